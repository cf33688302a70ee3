"""GETAM's split cross-entropy and saliency BCE (``docs/methods/getam.md#26-losses``):
hand-computed values, the empty half (no NaN), both saliency targets, and the reference target
reproduced from the aliased saliency array of the released code."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wsss_getam.testing import registered  # noqa: F401 (fixture; also sets up the process)
from wsss_getam.losses.saliency_loss import SaliencyLoss, saliency_target
from wsss_getam.losses.split_ce import SplitCrossEntropyLoss
from wsss_getam.online_labels import online_pseudo_labels


def nll(z, k):
    """-log softmax(z)_k for one pixel's logits (a list)."""
    return -(z[k] - math.log(sum(math.exp(v) for v in z)))


# One row of 5 pixels, 3 channels (background + 2 classes).
Z = [[2.0, 0.5, -1.0], [0.1, 1.5, 0.3], [-0.5, 0.2, 2.5], [1.0, 1.0, 1.0], [0.3, -0.2, 0.9]]
LOGITS = torch.tensor(Z).T.reshape(1, 3, 1, 5)


def test_split_ce_averages_background_and_foreground_separately():
    label = torch.tensor([[[0, 1, 2, 255, 0]]])
    loss = SplitCrossEntropyLoss()(LOGITS, label)
    bg = (nll(Z[0], 0) + nll(Z[4], 0)) / 2
    fg = (nll(Z[1], 1) + nll(Z[2], 2)) / 2
    assert loss.item() == pytest.approx(bg + fg, rel=1e-6)
    # not the plain mean over the four labelled pixels
    assert loss.item() != pytest.approx((2 * bg + 2 * fg) / 4, rel=1e-3)


def test_split_ce_without_background_pixels_is_finite_with_a_gradient():
    logits = LOGITS.clone().requires_grad_(True)
    label = torch.tensor([[[1, 1, 2, 255, 2]]])  # no pixel of label 0
    with torch.no_grad():  # the reference's plain mean is NaN on the empty half
        y_bg = torch.full_like(label, 255)
        assert torch.isnan(F.cross_entropy(LOGITS, y_bg, ignore_index=255))
    loss = SplitCrossEntropyLoss(loss_weight=2.0)(logits, label)
    fg = (nll(Z[0], 1) + nll(Z[1], 1) + nll(Z[2], 2) + nll(Z[4], 2)) / 4
    assert loss.item() == pytest.approx(2.0 * fg, rel=1e-6)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_split_ce_all_ignored_is_zero_and_differentiable():
    logits = LOGITS.clone().requires_grad_(True)
    loss = SplitCrossEntropyLoss()(logits, torch.full((1, 1, 1, 5), 255))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert (logits.grad == 0).all()


def test_split_ce_resizes_logits_to_the_label():
    logits = torch.randn(2, 3, 4, 4)
    label = torch.randint(0, 3, (2, 8, 8))
    up = F.interpolate(logits, size=(8, 8), mode='bilinear', align_corners=False)
    assert SplitCrossEntropyLoss()(logits, label).item() == pytest.approx(
        SplitCrossEntropyLoss()(up, label).item(), rel=1e-6)


# ----------------------------------------------------------------------------- saliency loss
def bce_by_hand(z_rows, targets):
    total = 0.0
    for z, t in zip(z_rows, targets):
        p = math.exp(z[0]) / sum(math.exp(v) for v in z)
        total += -(t * math.log(p) + (1 - t) * math.log(1 - p))
    return total / len(z_rows)


SALIENT = torch.tensor([[[True, True, False, False, True]]])
COMPLETED = torch.tensor([[[False, False, True, False, False]]])


def test_intended_target_is_one_minus_saliency():
    loss = SaliencyLoss()(LOGITS, SALIENT, COMPLETED)  # 'intended' is the default
    assert loss.item() == pytest.approx(bce_by_hand(Z, [0, 0, 1, 1, 0]), rel=1e-6)


def test_reference_target_is_one_except_at_completed_pixels():
    loss = SaliencyLoss(mode='reference')(LOGITS, SALIENT, COMPLETED)
    assert loss.item() == pytest.approx(bce_by_hand(Z, [1, 1, 0, 1, 1]), rel=1e-6)
    want = F.binary_cross_entropy(LOGITS.softmax(1)[:, 0], torch.tensor([[[1., 1, 0, 1, 1]]]))
    assert loss.item() == pytest.approx(want.item(), rel=1e-6)
    with pytest.raises(ValueError, match='completed'):
        SaliencyLoss(mode='reference')(LOGITS, SALIENT)


def test_reference_target_reproduces_the_aliased_saliency_array():
    """The released code: binarise the saliency in place, write 255 at completed pixels, then
    target = 1 - int(saliency / 255).  Built here literally and compared."""
    h, w = 6, 10
    maps = np.zeros((1, 2, h, w), np.float32)
    maps[0, 0].flat[:30] = np.arange(1, 31)
    sal = np.zeros((1, h, w), np.float32)
    sal[0, 3:, :] = 200.0                    # the lower half salient (soft values)
    labels = torch.tensor([[1.0, 0.0]])
    out = online_pseudo_labels(torch.from_numpy(maps), labels, torch.from_numpy(sal), opening=0)
    assert out.completed.sum() == 2
    aliased = sal.copy()
    aliased[aliased > 0] = 1
    aliased[out.completed.numpy()] = 255
    literal = 1 - (aliased / 255).astype(np.int64)
    got = saliency_target('reference', out.salient, out.completed)
    np.testing.assert_array_equal(got.numpy(), literal)
    assert got.sum() == h * w - 2            # 1 everywhere, salient or not, but 2 pixels


def test_saliency_loss_resizes_and_has_gradients():
    logits = torch.randn(2, 4, 5, 5, requires_grad=True)
    salient = torch.rand(2, 10, 10) > 0.5
    loss = SaliencyLoss(mode='intended')(logits, salient)
    up = F.interpolate(logits, size=(10, 10), mode='bilinear', align_corners=False)
    want = F.binary_cross_entropy(up.softmax(1)[:, 0], 1.0 - salient.float())
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    with pytest.raises(ValueError, match='mode'):
        SaliencyLoss(mode='soft')
