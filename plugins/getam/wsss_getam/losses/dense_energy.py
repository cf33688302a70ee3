"""Gated dense-CRF energy loss (RRM's variant of the rloss dense-CRF loss of Tang et al.,
"On regularized losses for weakly-supervised CNN segmentation", ECCV 2018), as GETAM uses it.

Inputs at crop size: the RGB crop ``I`` (0..255), the soft-max probabilities ``P`` (B, K, H, W),
the valid-crop mask ``ROI`` (1 inside the image, 0 in padding) and the pseudo label ``y``.
Everything is first downscaled by ``scale_factor`` (image, ROI and label nearest, ``P``
bilinear with align_corners=False).  Then, per image n and class k:

    g_n    = max(0, ROI_n - max_k P_nk),  set to 1 where y_n = 255        (the gate, constant)
    S_nk   = ROI_n * P_nk
    E      = -(weight / N) * sum_n sum_k S_nk^T [ (W_n S_nk) * g_n ]

with N the batch size and ``W_n`` the un-normalised Gaussian bilateral filter of image n
(:mod:`.bilateral`; features ``(x, y) / (sigma_xy * scale_factor)`` and ``RGB / sigma_rgb``).

Gradient.  The reference's backward is ``dE/dS_nk = -(2 weight / N) (W_n S_nk) * g_n``,
masked by ROI.  That is the gradient of ``-S^T W S`` with the gate applied afterwards; it is
*not* the gradient of ``E`` as written (that would be ``-(weight / N) [(W S) * g + W (S * g)]``;
the two agree only where the gate is constant).  It is reproduced here with a surrogate
whose value is ``E`` and whose autograd gradient is that formula::

    A = (W S_bar) * g   (S_bar = S detached, no graph through the filter)
    E = -(weight / N) * (2 <S, A> - <S_bar, A>)

so ``dE/dS = -(2 weight / N) A`` and, through ``S = ROI * P``, ``dE/dP = ROI * dE/dS``,
then back through the bilinear downscale to the full-size ``P``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from wsss_core.registry import MODELS

from .bilateral import METHODS, bilateral_filter, grid_bilateral_filter

__all__ = ['DenseEnergyLoss', 'dense_energy_gate']

IGNORE_INDEX = 255


def dense_energy_gate(probs: torch.Tensor, roi: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """``g = max(0, ROI - max_k P_k)``, 1 where ``label == 255``; ``(B, H, W)``, no gradient."""
    gate = roi.to(probs.dtype) - probs.detach().amax(1)
    gate = torch.where(label == IGNORE_INDEX, torch.ones_like(gate), gate)
    return gate.clamp_min(0.0)


def grid_filter_parameters() -> dict:
    """The options of the bilateral grid (``cell``, ``shifts``, ``max_grid_elements``) with
    their defaults: what DenseEnergyLoss's ``**grid_options`` takes."""
    import inspect
    params = inspect.signature(grid_bilateral_filter).parameters.values()
    return {p.name: p.default for p in params if p.default is not p.empty}


@MODELS.register_module()
class DenseEnergyLoss(nn.Module):
    """The gated dense-CRF energy (module docstring), GETAM's defaults.

    Args:
        weight: the energy's weight (GETAM ``--densecrfloss 1e-7``).
        sigma_rgb: colour std (15).
        sigma_xy: spatial std in full-size pixels (100; 50 on the half-size maps).
        scale_factor: downscale before the energy (``--rloss-scale`` 0.5).
        method: ``'grid'`` (bilateral-grid approximation, ~1 % from exact, fast) or
            ``'exact'`` (all pairs; O((H W scale^2)^2)).  See :mod:`.bilateral`.
        grid_options: passed to the grid (``cell``, ``shifts``, ``max_grid_elements``).

    ``forward(image (B, 3, H, W) 0..255, probs (B, K, H, W) soft-max, roi (B, H, W) 0/1,
    label (B, H, W) or (B, 1, H, W) with 255 = ignore)`` returns the scalar ``E``.
    """

    #: what ``**grid_options`` takes: the grid filter's keyword parameters
    extra_parameters = staticmethod(grid_filter_parameters)

    def __init__(self, weight: float = 1e-7, sigma_rgb: float = 15.0, sigma_xy: float = 100.0,
                 scale_factor: float = 0.5, method: str = 'grid', **grid_options):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f'DenseEnergyLoss method must be one of {METHODS}, not {method!r}')
        if method == 'exact' and grid_options:
            raise ValueError(f"grid options {sorted(grid_options)} need method='grid'")
        if not 0.0 < float(scale_factor) <= 1.0:
            raise ValueError(f'scale_factor must lie in (0, 1], got {scale_factor}')
        self.weight = float(weight)
        self.sigma_rgb = float(sigma_rgb)
        self.sigma_xy = float(sigma_xy)
        self.scale_factor = float(scale_factor)
        self.method = method
        self.grid_options = dict(grid_options)

    def downscale(self, image, probs, roi, label):
        """The inputs at ``scale_factor``: nearest, but ``probs`` bilinear (align_corners=False)."""
        if label.ndim == 3:
            label = label[:, None]
        s = self.scale_factor
        if s == 1.0:
            return image, probs, roi, label[:, 0]
        image = F.interpolate(image, scale_factor=s, mode='nearest')
        probs = F.interpolate(probs, scale_factor=s, mode='bilinear', align_corners=False)
        roi = F.interpolate(roi[:, None].float(), scale_factor=s, mode='nearest')[:, 0]
        label = F.interpolate(label.float(), scale_factor=s, mode='nearest')[:, 0]
        return image, probs, roi, label

    def forward(self, image: torch.Tensor, probs: torch.Tensor, roi: torch.Tensor,
                label: torch.Tensor) -> torch.Tensor:
        if probs.ndim != 4 or image.shape[0] != probs.shape[0] \
                or image.shape[-2:] != probs.shape[-2:] or roi.shape[-2:] != probs.shape[-2:]:
            raise ValueError(f'DenseEnergyLoss: image {tuple(image.shape)}, probs '
                             f'{tuple(probs.shape)} and roi {tuple(roi.shape)} must share B, H, W')
        image, probs, roi, label = self.downscale(image.float(), probs.float(), roi, label)
        gate = dense_energy_gate(probs, roi, label)[:, None]
        seg = roi[:, None].to(probs.dtype) * probs
        with torch.no_grad():
            filtered = bilateral_filter(image, seg.detach(), self.sigma_rgb,
                                        self.sigma_xy * self.scale_factor, self.method,
                                        **self.grid_options)
            gated = filtered * gate
        surrogate = 2.0 * (seg * gated).sum() - (seg.detach() * gated).sum()
        return -self.weight * surrogate / probs.shape[0]

    def extra_repr(self) -> str:
        return (f'weight={self.weight}, sigma_rgb={self.sigma_rgb}, sigma_xy={self.sigma_xy}, '
                f'scale_factor={self.scale_factor}, method={self.method!r}')
