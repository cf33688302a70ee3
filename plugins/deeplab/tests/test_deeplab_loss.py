"""Label downsampling (PIL nearest), the ignore-255 loss and the all-ignored batch."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from wsss_deeplab.testing import registered, tiny_v2  # noqa: F401 (fixture)
from wsss_core.datasets.label_resize import pil_nearest_indices, resize_labels_nearest
from wsss_deeplab.models.seg_loss import multi_output_loss, safe_cross_entropy


def pil_resize(arr: np.ndarray, h: int, w: int) -> np.ndarray:
    return np.asarray(Image.fromarray(arr).resize((w, h), Image.NEAREST))


@pytest.mark.parametrize('src,dst', [((321, 321), (41, 41)), ((321, 321), (21, 21)),
                                     ((321, 321), (31, 31)), ((375, 500), (47, 63)),
                                     ((2, 4), (7, 6)), ((4, 6), (7, 9)), ((33, 17), (5, 40))])
def test_label_downsampling_matches_pil_nearest(src, dst):
    rng = np.random.default_rng(0)
    label = rng.integers(0, 22, size=src).astype(np.uint8)
    label[rng.random(src) < 0.2] = 255
    ours = resize_labels_nearest(torch.from_numpy(label)[None], dst)[0].numpy()
    np.testing.assert_array_equal(ours, pil_resize(label, *dst))


def test_pil_nearest_indices_over_many_sizes():
    for n_in in range(1, 70):
        ramp = np.arange(n_in, dtype=np.uint8)[None].repeat(2, 0)
        for n_out in range(1, 80):
            expected = pil_resize(ramp, 2, n_out)[0]
            np.testing.assert_array_equal(pil_nearest_indices(n_in, n_out), expected,
                                          err_msg=f'{n_in} -> {n_out}')


def test_legacy_torch_nearest_differs_from_pil():
    """The misalignment deeplab-pytorch fixed (its issue #51): floor(i * in / out)."""
    ramp = torch.arange(321.0).view(1, 1, 1, 321)
    legacy = F.interpolate(ramp, size=(1, 41), mode='nearest')[0, 0, 0].long().numpy()
    assert not np.array_equal(legacy, pil_nearest_indices(321, 41))


def test_cross_entropy_ignores_255_by_hand():
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]]]])      # (1, 2 classes, 1, 2)
    target = torch.tensor([[[1, 255]]])
    loss, n_valid = safe_cross_entropy(logits, target)
    expected = -math.log(math.exp(0.0) / (math.exp(2.0) + math.exp(0.0)))
    assert n_valid == 1
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_each_output_gets_its_own_downsampled_labels():
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[:, :, 4:] = 1
    full = torch.zeros(1, 2, 8, 8)
    full[:, 0, :, :4] = 10.0
    full[:, 1, :, 4:] = 10.0                     # right everywhere at full size
    half = torch.zeros(1, 2, 4, 4)
    half[:, 0] = 10.0                             # wrong on the right half at 0.5
    losses = multi_output_loss([full, half], target, names=['x1', 'x0.5'])
    assert losses['loss_x1'].item() < 1e-3
    assert losses['loss_x0.5'].item() == pytest.approx(5.0, abs=1e-3)   # half the pixels ~ 10


def test_all_ignored_batch_gives_zero_finite_loss_and_is_counted(registered):
    model = tiny_v2(num_classes=3).train()
    img = torch.randn(2, 3, 65, 65)
    ignored = torch.full((2, 65, 65), 255, dtype=torch.long)
    losses = model(img, pseudo_seg=ignored, mode='loss')
    assert set(losses) == {'loss_x1', 'loss_x0.5', 'loss_x0.75', 'loss_max',
                           'num_ignored_batches'}
    total, log_vars = model.parse_losses(losses)
    assert torch.isfinite(total) and total.item() == 0.0
    assert log_vars['num_ignored_batches'].item() == 1
    total.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.count_nonzero(g) == 0 for g in grads)
    labelled = torch.randint(0, 3, (2, 65, 65))
    losses = model(img, gt_seg=labelled, mode='loss')
    total, log_vars = model.parse_losses(losses)
    assert total.item() > 0 and log_vars['num_ignored_batches'].item() == 1
    assert model.num_ignored_batches == 1


def test_loss_sums_the_four_outputs_and_prefers_pseudo_labels(registered):
    model = tiny_v2(num_classes=3).train()
    img = torch.randn(1, 3, 41, 41)
    gt = torch.zeros(1, 41, 41, dtype=torch.long)
    pseudo = torch.full((1, 41, 41), 2, dtype=torch.long)
    losses = model(img, gt_seg=gt, pseudo_seg=pseudo, mode='loss')
    from_pseudo = model(img, gt_seg=pseudo, mode='loss')
    for key in ('loss_x1', 'loss_x0.5', 'loss_x0.75', 'loss_max'):
        torch.testing.assert_close(losses[key], from_pseudo[key])
    total, _ = model.parse_losses(losses)
    parts = sum(losses[k] for k in losses if k.startswith('loss_'))
    torch.testing.assert_close(total, parts)
    with pytest.raises(ValueError, match='pseudo_seg'):
        model(img, mode='loss')
