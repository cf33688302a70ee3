"""TestSegmentor's parts: TTA fusion, upsampled probabilities, CRF image, export without GT."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wsss_core.pipeline.stage import StageError


class LeftRightModel:
    """Fake segmentor: 2 classes scoring x (column index) and 0, at half resolution."""

    def fused_logits(self, img):
        b, _, h, w = img.shape
        cols = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w).expand(b, 1, h, w)
        y = torch.cat([cols * img[:, :1], torch.zeros(b, 1, h, w)], dim=1)
        return y[..., ::2, ::2]


def test_flip_tta_averages_the_mirrored_pass_by_hand():
    from wsss_core.pipeline.segmentor_inference import tta_logits
    img = torch.ones(1, 3, 4, 4)
    out = tta_logits(LeftRightModel(), img, scales=(1.0,), flip=True)
    # plain: columns 0, 2 (the kept ones of 0..3); mirrored pass then flipped back: 3-1, 3-3
    # -> mean per kept column: (0 + 2) / 2 = 1 and (2 + 0) / 2 = 1
    torch.testing.assert_close(out[0, 0], torch.ones(2, 2))
    plain = tta_logits(LeftRightModel(), img, scales=(1.0,), flip=False)
    torch.testing.assert_close(plain[0, 0], torch.tensor([[0.0, 2.0], [0.0, 2.0]]))


def test_multiscale_tta_resizes_to_the_full_scale_grid():
    from wsss_core.pipeline.segmentor_inference import tta_logits
    out = tta_logits(LeftRightModel(), torch.ones(1, 3, 8, 8), scales=(0.5, 1.0))
    assert out.shape == (1, 2, 4, 4)


def test_upsampled_probs_match_torch_bilinear_softmax():
    from wsss_core.pipeline.segmentor_postprocess import upsampled_probs
    logits = np.random.default_rng(0).normal(size=(5, 6, 7)).astype(np.float32)
    ours = upsampled_probs(logits, (45, 53))
    ref = F.interpolate(torch.from_numpy(logits)[None], size=(45, 53), mode='bilinear',
                        align_corners=False).softmax(1)[0].numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    np.testing.assert_allclose(ours.sum(0), 1.0, atol=1e-5)


def test_crf_image_modes():
    from wsss_core.pipeline.segmentor_postprocess import crf_image
    rgb = np.array([[[200, 100, 50]]], dtype=np.uint8)
    assert crf_image(rgb, 'raw_rgb') is not None and (crf_image(rgb, 'raw_rgb') == rgb).all()
    # BGR (50, 100, 200) - (104.008, 116.669, 122.675) = (-54.0, -16.7, 77.3) -> trunc -> mod 256
    np.testing.assert_array_equal(crf_image(rgb, 'mean_subtracted_bgr')[0, 0],
                                  [256 - 54, 256 - 16, 77])
    with pytest.raises(ValueError, match='crf_image'):
        crf_image(rgb, 'bgr')


def test_crf_config_forms():
    from wsss_core.pipeline.segmentor_inference import normalize_crf_cfg
    assert normalize_crf_cfg(None) is None and normalize_crf_cfg(False) is None
    assert normalize_crf_cfg(True) == dict(preset='deeplab', image='raw_rgb')
    assert normalize_crf_cfg(dict(type='DenseCRF', iterations=5))['iterations'] == 5
    with pytest.raises(StageError, match='DenseCRF'):
        normalize_crf_cfg(dict(type='BackgroundThreshold'))
    with pytest.raises(TypeError, match='unknown dense-CRF parameter'):
        normalize_crf_cfg(dict(iters=5))


class NoGTDataset:
    """Two test images without masks (like the VOC test split)."""

    def __init__(self):
        self.records = ['x', 'y']

    def load_sample(self, index):
        return dict(img_id=self.records[index], img=np.full((10, 12, 3), 120, np.uint8))


def test_postprocess_exports_without_ground_truth_and_is_picklable(tmp_path):
    from wsss_core.io import read_label_png
    from wsss_core.refiners.dense_crf import crf_params
    from wsss_core.pipeline.segmentor_postprocess import PostprocessJob, save_logits
    logits = np.zeros((3, 2, 2), np.float32)
    logits[2] = 5.0
    for img_id in ('x', 'y'):
        save_logits(tmp_path / 'logits' / f'{img_id}.npz', logits, (10, 12))
    job = PostprocessJob(NoGTDataset(), tmp_path / 'logits', tmp_path / 'pred',
                         tmp_path / 'raw', 3, crf_params('deeplab'))
    job = pickle.loads(pickle.dumps(job))
    assert job(0) == ('x', None, None)
    pred = read_label_png(tmp_path / 'pred' / 'x.png')
    assert pred.shape == (10, 12) and (pred == 2).all()
    assert (read_label_png(tmp_path / 'raw' / 'x.png') == 2).all()


def test_test_stage_needs_scale_one():
    from wsss_core.pipeline.segmentor_inference import TestSegmentor
    with pytest.raises(StageError, match='1.0'):
        TestSegmentor('t', checkpoint='c', scales=(0.5, 0.75))


def test_postprocess_crf_names_the_image_whose_scores_hold_nan(tmp_path):
    from wsss_core.refiners.dense_crf import crf_params
    from wsss_core.pipeline.segmentor_postprocess import PostprocessJob, save_logits
    logits = np.zeros((3, 2, 2), np.float32)
    logits[1, 0, 0] = np.nan
    save_logits(tmp_path / 'logits' / 'y.npz', logits, (10, 12))
    job = PostprocessJob(NoGTDataset(), tmp_path / 'logits', tmp_path / 'pred',
                         tmp_path / 'raw', 3, crf_params('deeplab'))
    with pytest.raises(ValueError, match=r'CRF of image y: .*NaN or inf'):
        job(1)


def test_large_finite_scores_are_stored_without_overflow(tmp_path):
    from wsss_core.io import read_label_png
    from wsss_core.pipeline.segmentor_postprocess import PostprocessJob, load_logits, save_logits
    # 7e4 is finite in float32 but beyond float16's largest value (65504)
    logits = np.zeros((3, 2, 2), np.float32)
    logits[1] = -70000.0
    logits[2, 0, 0] = 70000.0
    save_logits(tmp_path / 'logits' / 'y.npz', logits, (10, 12))
    np.testing.assert_array_equal(load_logits(tmp_path / 'logits' / 'y.npz'), logits)
    # softmax of (0, -7e4, 7e4) picks class 2 at the top-left cell, of (0, -7e4, 0) class 0
    # (the first of the tied) elsewhere
    job = PostprocessJob(NoGTDataset(), tmp_path / 'logits', tmp_path / 'pred', None, 3)
    assert job(1) == ('y', None, None)
    pred = read_label_png(tmp_path / 'pred' / 'y.png')
    assert pred[0, 0] == 2 and pred[-1, -1] == 0
    # scores within float16's range keep the half-size storage
    save_logits(tmp_path / 'small.npz', logits / 10, (10, 12))
    with np.load(tmp_path / 'small.npz') as data:
        assert data['logits'].dtype == np.float16
