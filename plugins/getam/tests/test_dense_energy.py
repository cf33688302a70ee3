"""The gated dense-CRF energy (``docs/methods/getam.md#26-losses``): the exact filter against a
from-scratch dense bilateral energy, the reference's gradient -2 (W S * g) / N masked by ROI,
the bilateral grid within its documented tolerance of exact, finite gradients, ROI 0 -> 0."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wsss_getam.testing import registered  # noqa: F401 (fixture; also sets up the process)
from wsss_getam.losses.bilateral import bilateral_filter
from wsss_getam.losses.dense_energy import DenseEnergyLoss, dense_energy_gate


def scene(seed: int, h: int, w: int) -> torch.Tensor:
    """(1, 3, H, W) colours 0..255: a gradient, a red box, a blue disc, noise."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing='ij')
    img = torch.stack([60 + 120 * xs, 80 + 100 * ys, 200 - 150 * xs * ys])
    img[:, h // 6:h * 5 // 8, w // 10:w * 2 // 5] = torch.tensor([220., 40, 40])[:, None, None]
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    img[:, (yy - h * 5 // 8) ** 2 + (xx - w * 2 // 3) ** 2 < (h // 4) ** 2] = \
        torch.tensor([30., 60, 200])[:, None]
    return (img + 8 * torch.randn(3, h, w, generator=g)).clamp(0, 255)[None]


def inputs(h, w, batch=2, k=3, seed=0):
    """image, soft-max probs, ROI (last columns padding), label (some 255, some padding 0)."""
    g = torch.Generator().manual_seed(seed)
    image = torch.cat([scene(seed + i, h, w) for i in range(batch)])
    logits = F.interpolate(torch.randn(batch, k, 3, 4, generator=g) * 3, size=(h, w),
                           mode='bilinear', align_corners=False)
    roi = torch.ones(batch, h, w)
    roi[0, :, w - w // 4:] = 0
    label = torch.randint(0, k, (batch, h, w), generator=g)
    label[:, : h // 3, : w // 3] = 255
    return image, logits.softmax(1), roi, label


def naive_energy(image, probs, roi, label, sigma_rgb, sigma_xy):
    """E = -(1/N) sum_n sum_k S^T [(W S) * g], W from explicit feature differences (float64)."""
    image, probs, roi, label = (t.double().numpy() for t in (image, probs, roi, label))
    n, k, h, w = probs.shape
    ys, xs = np.mgrid[0:h, 0:w]
    total, grads = 0.0, np.zeros_like(probs)
    for i in range(n):
        f = np.concatenate([np.stack([xs, ys]).reshape(2, -1) / sigma_xy,
                            image[i].reshape(3, -1) / sigma_rgb])          # (5, HW)
        diff = f[:, :, None] - f[:, None, :]
        wmat = np.exp(-0.5 * (diff ** 2).sum(0))                           # (HW, HW)
        gate = roi[i] - probs[i].max(0)
        gate[label[i] == 255] = 1
        gate = np.maximum(gate, 0).reshape(-1)
        for c in range(k):
            s = (roi[i] * probs[i, c]).reshape(-1)
            a = (wmat @ s) * gate
            total -= s @ a
            grads[i, c] = (-2.0 * a * roi[i].reshape(-1)).reshape(h, w)
    return total / n, grads / n


def test_gate_on_crafted_pixels():
    probs = torch.tensor([[[[0.7, 0.5, 0.9, 0.6]], [[0.3, 0.5, 0.1, 0.4]]]])  # (1, 2, 1, 4)
    roi = torch.tensor([[[1.0, 1.0, 0.0, 0.0]]])
    label = torch.tensor([[[0, 255, 1, 255]]])
    gate = dense_energy_gate(probs, roi, label)
    torch.testing.assert_close(gate, torch.tensor([[[0.3, 1.0, 0.0, 1.0]]]))


def test_exact_energy_equals_a_from_scratch_dense_energy_on_16x16():
    image, probs, roi, label = inputs(16, 16)
    loss = DenseEnergyLoss(weight=1.0, sigma_xy=6.0, scale_factor=1.0, method='exact')
    want, _ = naive_energy(image, probs, roi, label, 15.0, 6.0)
    assert loss(image, probs, roi, label).item() == pytest.approx(want, rel=1e-5)
    got = DenseEnergyLoss(weight=1e-7, sigma_xy=6.0, scale_factor=1.0, method='exact')(
        image, probs, roi, label[:, None])  # (B, 1, H, W) labels are accepted too
    assert got.item() == pytest.approx(1e-7 * want, rel=1e-5)


def test_downscaling_by_half_then_the_energy():
    image, probs, roi, label = inputs(32, 32)
    loss = DenseEnergyLoss(weight=1.0, sigma_xy=12.0, scale_factor=0.5, method='exact')
    # nearest at 1/2 keeps the even rows/columns; bilinear (half-pixel) averages 2 x 2 blocks
    small = (image[..., ::2, ::2], F.avg_pool2d(probs, 2), roi[..., ::2, ::2],
             label[..., ::2, ::2])
    want, _ = naive_energy(*small, 15.0, 6.0)
    assert loss(image, probs, roi, label).item() == pytest.approx(want, rel=1e-5)


def test_gradient_is_the_reference_formula_not_the_gradient_of_e():
    image, probs, roi, label = inputs(16, 16)
    probs = probs.clone().requires_grad_(True)
    loss = DenseEnergyLoss(weight=1.0, sigma_xy=6.0, scale_factor=1.0, method='exact')
    loss(image, probs, roi, label).backward()
    _, want = naive_energy(image, probs.detach(), roi, label, 15.0, 6.0)
    np.testing.assert_allclose(probs.grad.double().numpy(), want, rtol=1e-4, atol=1e-6)
    # the plain autograd gradient of E (gate constant) is a different vector field
    p2 = probs.detach().clone().requires_grad_(True)
    gate = dense_energy_gate(p2, roi, label)[:, None]
    seg = roi[:, None] * p2
    plain = -(seg * bilateral_filter(image, seg, 15.0, 6.0, 'exact') * gate).sum() / 2
    plain.backward()
    assert plain.item() == pytest.approx(loss(image, probs, roi, label).item(), rel=1e-5)
    assert not torch.allclose(p2.grad, probs.grad, rtol=1e-2)


def test_grid_is_within_its_documented_tolerance_of_exact():
    image, probs, roi, label = inputs(48, 64)
    probs = probs.clone().requires_grad_(True)
    exact = DenseEnergyLoss(weight=1.0, sigma_xy=20.0, method='exact')
    grid = DenseEnergyLoss(weight=1.0, sigma_xy=20.0)  # method='grid' is the default
    assert grid.method == 'grid'
    e_exact = exact(image, probs, roi, label)
    (g_exact,) = torch.autograd.grad(e_exact, probs)
    e_grid = grid(image, probs, roi, label)
    (g_grid,) = torch.autograd.grad(e_grid, probs)
    assert abs(e_grid.item() / e_exact.item() - 1) < 0.01
    assert ((g_grid - g_exact).norm() / g_exact.norm()).item() < 0.02
    s = image.new_ones(2, 1, 48, 64)  # the filter alone: W 1 within 2 % (L2)
    w1_exact = bilateral_filter(image, s, 15.0, 20.0, 'exact')
    w1_grid = bilateral_filter(image, s, 15.0, 20.0, 'grid')
    assert ((w1_grid - w1_exact).norm() / w1_exact.norm()).item() < 0.02


def test_gradients_are_finite_and_roi_zero_gives_zero():
    image, probs, roi, label = inputs(32, 40)
    logits = torch.randn(2, 3, 32, 40, requires_grad=True)
    loss = DenseEnergyLoss()(image, logits.softmax(1), roi, label)
    assert torch.isfinite(loss) and loss.item() < 0
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    logits.grad = None
    zero = DenseEnergyLoss()(image, logits.softmax(1), torch.zeros_like(roi), label)
    assert zero.item() == 0.0
    zero.backward()
    assert (logits.grad == 0).all()


def test_built_from_the_registry_with_getams_defaults(registered):  # noqa: F811
    from wsss_core.registry import MODELS, build
    loss = build(dict(type='DenseEnergyLoss'), MODELS)
    assert (loss.weight, loss.sigma_rgb, loss.sigma_xy, loss.scale_factor) == (1e-7, 15.0, 100.0,
                                                                                0.5)
    with pytest.raises(ValueError, match='method'):
        DenseEnergyLoss(method='permutohedral')
    with pytest.raises(ValueError, match='grid'):
        DenseEnergyLoss(method='exact', cell=0.5)
