"""PAMR: equal to a per-pixel loop transcription of its equations, constants stay constant, a
blurred mask edge moves to the colour edge; the PAMRRefiner in a refiner chain."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from wsss_core.io import read_label_png, save_cam
from wsss_core.refiners.background_threshold import BackgroundThreshold
from wsss_core.refiners.parallel import RefineChainJob
from wsss_core.refiners.pamr import PAMR, PAMRRefiner, normalise_by_max, pamr_affinity
from wsss_core.registry import LABEL_REFINERS, build


def naive_pamr(img: np.ndarray, mask: np.ndarray, num_iter: int, dilations) -> np.ndarray:
    """PAMR for one image, pixel by pixel: img (C, H, W), mask (K, H, W), float64."""
    _, h, w = img.shape

    def at(arr, y, x):  # replicate padding = clamped coordinates
        return arr[:, min(max(y, 0), h - 1), min(max(x, 0), w - 1)]

    window = [(dy * d, dx * d) for d in dilations for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    neighbours = [(oy, ox) for oy, ox in window if (oy, ox) != (0, 0)]
    alpha = np.zeros((len(neighbours), h, w))
    for y in range(h):
        for x in range(w):
            samples = np.stack([at(img, y + oy, x + ox) for oy, ox in window])  # (54, C)
            sigma = samples.std(axis=0, ddof=1)
            k = np.array([np.mean(-np.abs(img[:, y, x] - at(img, y + oy, x + ox))
                                  / (1e-8 + 0.1 * sigma)) for oy, ox in neighbours])
            e = np.exp(k - k.max())
            alpha[:, y, x] = e / e.sum()
    for _ in range(num_iter):
        new = np.zeros_like(mask)
        for y in range(h):
            for x in range(w):
                new[:, y, x] = sum(alpha[i, y, x] * at(mask, y + oy, x + ox)
                                   for i, (oy, ox) in enumerate(neighbours))
        mask = new
    return mask


@pytest.mark.parametrize('dilations', [(1, 2), (1, 3, 10)])
def test_pamr_equals_a_per_pixel_loop(dilations):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(2, 3, 7, 9)).astype(np.float64)
    img[1, :, :, :4] = 50.0  # a flat patch: sigma 0 there for the small dilations
    mask = rng.random((2, 3, 7, 9))
    got = PAMR(num_iter=2, dilations=dilations)(torch.from_numpy(img), torch.from_numpy(mask))
    assert got.shape == (2, 3, 7, 9) and got.dtype == torch.float64
    for b in range(2):
        want = naive_pamr(img[b], mask[b], 2, dilations)
        np.testing.assert_allclose(got[b].numpy(), want, rtol=1e-10, atol=1e-12)


def test_affinity_is_a_distribution_over_the_48_neighbours():
    img = torch.rand(1, 3, 20, 20) * 255
    alpha = pamr_affinity(img, (1, 2, 4, 8, 12, 24))
    assert alpha.shape == (1, 48, 20, 20)
    assert (alpha >= 0).all()
    torch.testing.assert_close(alpha.sum(1), torch.ones(1, 20, 20))


def test_a_constant_mask_stays_constant():
    torch.manual_seed(0)
    img = torch.rand(2, 3, 32, 32) * 255
    mask = torch.full((2, 4, 32, 32), 0.7)
    out = PAMR()(img, mask)
    torch.testing.assert_close(out, mask, atol=1e-5, rtol=0)


def edge_scene(h=16, w=32, colour_edge=16, mask_edge=11.5):
    """Dark left / bright right image; a soft mask whose 0.5 level is left of the colour edge."""
    img = torch.full((1, 3, h, w), 40.0)
    img[..., colour_edge:] = 200.0
    cols = torch.arange(w, dtype=torch.float32)
    mask = torch.sigmoid((cols - mask_edge) / 2.0).expand(1, 1, h, w).clone()
    return img, mask


def half_level_crossing(row: torch.Tensor) -> int:
    """First column where the (max-normalised) mask reaches 0.5."""
    return int(torch.nonzero(normalise_by_max(row[None, None])[0, 0] >= 0.5)[0])


def test_a_blurred_mask_edge_moves_to_the_colour_edge():
    img, mask = edge_scene()
    assert half_level_crossing(mask[0, 0, 0]) == 12  # 4 columns left of the colour edge
    out = PAMR()(img, mask)
    for row in out[0, 0]:
        assert half_level_crossing(row) == 16
    # inside each colour region the mask flattens, across the edge it jumps
    left, right = out[0, 0, :, :16], out[0, 0, :, 16:]
    assert left.max() - left.min() < 0.05 and right.max() - right.min() < 0.05
    assert right.min() - left.max() > 0.5


def test_mask_is_resized_to_the_image_first():
    img, mask = edge_scene(h=16, w=32)
    small = torch.rand(1, 2, 8, 16)
    out = PAMR(num_iter=0)(img, small)  # no iteration: only the resize
    want = torch.nn.functional.interpolate(small, size=(16, 32), mode='bilinear',
                                           align_corners=True)
    torch.testing.assert_close(out, want)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match='dilations'):
        PAMR(dilations=(0, 1))
    with pytest.raises(ValueError, match='same'):
        PAMR()(torch.rand(1, 3, 8, 8), torch.rand(2, 1, 8, 8))


# ----------------------------------------------------------------------------- the refiner
def edge_sample(with_label=False):
    img, mask = edge_scene()
    sample = dict(img_id='x', img=img[0].permute(1, 2, 0).numpy().astype(np.uint8),
                  cams=(mask[0, :, ::2, ::2] * 0.8).numpy(),  # half resolution, max 0.8
                  class_ids=np.array([4]))
    if with_label:
        sample['label'] = np.zeros((16, 32), np.uint8)
    return sample


def test_refiner_then_background_threshold_labels_the_colour_region():
    refiner = build(dict(type='PAMRRefiner'), LABEL_REFINERS)
    assert isinstance(refiner, PAMRRefiner) and refiner.needs == ('img',)
    sample = refiner(edge_sample())
    assert 'label' not in sample
    cams = sample['cams']
    assert cams.shape == (1, 16, 32) and cams.dtype == np.float32
    peak = PAMR()(torch.from_numpy(edge_sample()['img']).permute(2, 0, 1)[None].float(),
                  torch.from_numpy(edge_sample()['cams'])[None]).max().item()
    assert 0.7 < peak < 0.81  # the input's max was 0.8
    np.testing.assert_allclose(cams.max(), peak / (peak + 1e-5), rtol=1e-6)  # re-normalised
    label = BackgroundThreshold(threshold=0.5)(sample)['label']
    want = np.zeros((16, 32), np.uint8)
    want[:, 16:] = 5  # class id 4 -> label 5
    np.testing.assert_array_equal(label, want)


def test_refiner_without_classes_and_with_a_label_already_set():
    sample = edge_sample()
    sample['cams'], sample['class_ids'] = np.zeros((0, 8, 16), np.float32), np.zeros(0, np.int64)
    assert PAMRRefiner()(sample)['cams'].shape == (0, 16, 32)
    with pytest.raises(ValueError, match='before the refiner that makes the label'):
        PAMRRefiner()(edge_sample(with_label=True))
    with pytest.raises(KeyError, match='img'):
        PAMRRefiner()(dict(img_id='y', cams=np.zeros((1, 4, 4)), class_ids=np.array([0])))


class OneImage:
    """The part of a VOC-layout dataset that RefineChainJob reads."""

    num_classes = 20

    def __init__(self, img):
        self.records = [type('Record', (), {'img_id': 'x'})()]
        self.img = img

    def load_sample(self, index):
        return dict(img=self.img, saliency=None)


def test_chain_in_the_refine_labels_job_writes_the_refined_label(tmp_path):
    sample = edge_sample()
    save_cam(tmp_path / 'cams' / 'x.npz', sample['cams'], sample['class_ids'])
    job = RefineChainJob(OneImage(sample['img']), [PAMRRefiner(), BackgroundThreshold(0.5)],
                         tmp_path / 'cams', tmp_path / 'labels')
    assert job(0) == 'x'
    label = read_label_png(tmp_path / 'labels' / 'x.png')
    assert (label[:, :16] == 0).all() and (label[:, 16:] == 5).all()
