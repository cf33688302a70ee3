"""PAMR: pixel-adaptive mask refinement (Araslanov & Roth, "Single-stage semantic segmentation
from image labels", CVPR 2020, Sec. 3.3).

Masks ``m`` (one channel per class) are diffused over a fixed, dilated neighbourhood with
weights that follow the colours of the image ``I``.  The paper's three PAMR equations:

* update:    ``m_t(p) = sum_{q in N(p)} alpha(p, q) m_{t-1}(q)``  (T = ``num_iter`` times);
* affinity:  ``alpha(p, q) = exp(kbar(p, q)) / sum_{q' in N(p)} exp(kbar(p, q'))``, a softmax
  over the neighbourhood, with ``kbar`` the kernel averaged over the colour channels;
* kernel:    ``k_c(p, q) = -|I_c(p) - I_c(q)| / sigma_c(p)``.

As implemented in the released code (and specified for GETAM), the kernel's scale is
``1e-8 + 0.1 sigma_c(p)`` and ``sigma_c(p)`` is the unbiased standard deviation of channel
``c`` over the 3 x 3 window around ``p`` at every dilation (9 samples per dilation, the centre
counted once per dilation: 54 samples for the 6 default dilations).  ``N(p)`` is the 8
neighbours of ``p`` at each dilation ``d`` (offsets ``(dy, dx) * d``, dy, dx in {-1, 0, 1},
not both 0): 48 neighbours by default; ``p`` itself is not one of them.  Outside the image
values are replicated from the border (replicate padding, i.e. clamped coordinates).

Everything is batched over images and classes and vectorised over pixels (one Python loop
over the 8 x len(dilations) offsets), on whatever device the inputs live.

:class:`PAMR` is the module; :class:`PAMRRefiner` is a LABEL_REFINER that refines a sample's
CAMs with its image as the guide.
"""
from __future__ import annotations

from typing import Iterator, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import LABEL_REFINERS
from .base import LabelRefiner

__all__ = ['PAMR', 'PAMRRefiner', 'neighbour_offsets', 'pamr_affinity', 'normalise_by_max']

#: the 8 unit offsets (dy, dx) of a 3 x 3 window without its centre
UNIT_OFFSETS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))


def neighbour_offsets(dilations: Sequence[int]) -> Tuple[Tuple[int, int], ...]:
    """All ``(dy * d, dx * d)`` neighbour offsets, dilation by dilation (8 per dilation)."""
    return tuple((dy * d, dx * d) for d in dilations for dy, dx in UNIT_OFFSETS)


def _shifted(padded: torch.Tensor, pad: int, size: Tuple[int, int],
             offsets: Sequence[Tuple[int, int]]) -> Iterator[torch.Tensor]:
    """Yield ``x(p + offset)`` per offset, from ``padded`` = ``x`` replicate-padded by ``pad``."""
    h, w = size
    for oy, ox in offsets:
        yield padded[..., pad + oy:pad + oy + h, pad + ox:pad + ox + w]


def _replicate_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Replicate padding by ``pad`` pixels on every side (== clamping the coordinates)."""
    h, w = x.shape[-2:]
    rows = torch.arange(-pad, h + pad, device=x.device).clamp_(0, h - 1)
    cols = torch.arange(-pad, w + pad, device=x.device).clamp_(0, w - 1)
    return x.index_select(-2, rows).index_select(-1, cols)


def pamr_affinity(image: torch.Tensor, dilations: Sequence[int]) -> torch.Tensor:
    """PAMR affinity ``alpha(p, q)`` (the softmax equation) as ``(B, 8 * len(dilations), H, W)``.

    ``kbar(p, q) = mean_c -|I_c(p) - I_c(q)| / (1e-8 + 0.1 sigma_c(p))``, softmax over ``q``;
    ``sigma_c(p)`` the unbiased std over the 3 x 3 windows at every dilation (module docstring).

    Args:
        image: ``(B, C, H, W)`` float guide (GETAM: RGB in 0..255, not normalised).
    """
    if image.ndim != 4:
        raise ValueError(f'PAMR: image must be (B, C, H, W), got {tuple(image.shape)}')
    size = tuple(image.shape[-2:])
    offsets = neighbour_offsets(dilations)
    pad = max(dilations)
    padded = _replicate_pad(image, pad)
    n_samples = len(offsets) + len(dilations)  # the centre once per dilation
    mean = (image * len(dilations) + sum(_shifted(padded, pad, size, offsets))) / n_samples
    sq = (image - mean).pow(2) * len(dilations)
    for nb in _shifted(padded, pad, size, offsets):
        sq = sq + (nb - mean).pow(2)
    scale = 1e-8 + 0.1 * (sq / (n_samples - 1)).sqrt()
    logits = torch.stack([-((image - nb).abs() / scale).mean(1)
                          for nb in _shifted(padded, pad, size, offsets)], dim=1)
    return logits.softmax(dim=1)


class PAMR(nn.Module):
    """Pixel-adaptive mask refinement (module docstring): ``num_iter`` steps of the update
    ``m(p) <- sum_q alpha(p, q) m(q)`` with the image-dependent affinity of :func:`pamr_affinity`.

    ``forward(image (B, C, H, W), mask (B, K, h, w)) -> (B, K, H, W)``; the mask is first
    resized to the image size (bilinear, align_corners=True) when its size differs.  The
    affinity is computed once per call and shared by all classes and iterations.  It has no
    parameters; gradients flow to the mask (not through the affinity's image).

    Args:
        num_iter: T, the number of update steps.
        dilations: neighbourhood dilations (8 neighbours each).
    """

    def __init__(self, num_iter: int = 10, dilations: Sequence[int] = (1, 2, 4, 8, 12, 24)):
        super().__init__()
        dilations = tuple(int(d) for d in dilations)
        if not dilations or min(dilations) < 1:
            raise ValueError(f'PAMR dilations must be positive integers, got {dilations}')
        if int(num_iter) < 0:
            raise ValueError(f'PAMR num_iter must be >= 0, got {num_iter}')
        self.num_iter = int(num_iter)
        self.dilations = dilations

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if mask.ndim != 4 or image.ndim != 4 or mask.shape[0] != image.shape[0]:
            raise ValueError(f'PAMR needs image (B, C, H, W) and mask (B, K, h, w) with the same '
                             f'B, got {tuple(image.shape)} and {tuple(mask.shape)}')
        size = tuple(image.shape[-2:])
        if tuple(mask.shape[-2:]) != size:
            mask = F.interpolate(mask, size=size, mode='bilinear', align_corners=True)
        image = image.detach().to(mask.dtype if mask.is_floating_point() else torch.float32)
        alpha = pamr_affinity(image, self.dilations)
        offsets = neighbour_offsets(self.dilations)
        pad = max(self.dilations)
        for _ in range(self.num_iter):
            padded = _replicate_pad(mask, pad)
            mask = sum(alpha[:, i:i + 1] * nb
                       for i, nb in enumerate(_shifted(padded, pad, size, offsets)))
        return mask

    def extra_repr(self) -> str:
        return f'num_iter={self.num_iter}, dilations={self.dilations}'


def normalise_by_max(maps: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``m_k / (max_x m_k(x) + eps)`` per map (over the last two dims); all-zero maps stay 0."""
    peak = maps.flatten(-2).amax(-1).clamp_min(0)[..., None, None]
    return maps / (peak + eps)


@LABEL_REFINERS.register_module()
class PAMRRefiner(LabelRefiner):
    """Refine a sample's CAMs with :class:`PAMR`, the image (RGB 0..255) as the guide.

    ``sample['cams']`` ``(K, h, w)`` is replaced by the refined maps at the image size
    ``(K, H, W)`` float32, each divided by its maximum + ``eps`` (absent / all-zero maps stay 0),
    so the maps are again in [0, 1] for the refiner that follows.

    This refiner changes the CAMs and does **not** set ``label``: put it first in a chain and
    follow it with a refiner that makes the label, e.g.
    ``refiners=[dict(type='PAMRRefiner'), dict(type='BackgroundThreshold', threshold=0.25)]``.
    A sample that already carries a label is refused (the label would no longer match the
    CAMs).

    Args:
        num_iter, dilations: see :class:`PAMR` (defaults: GETAM's 10 and (1, 2, 4, 8, 12, 24)).
        eps: added to each map's maximum when re-normalising (GETAM: 1e-5).
    """

    needs = ('img',)

    def __init__(self, num_iter: int = 10, dilations: Sequence[int] = (1, 2, 4, 8, 12, 24),
                 eps: float = 1e-5):
        self.pamr = PAMR(num_iter, dilations)
        self.eps = float(eps)

    def refine(self, sample: dict) -> dict:
        if sample.get('label') is not None:
            raise ValueError(
                f"PAMRRefiner got image {sample.get('img_id')} with a label already set: it "
                'refines the CAMs, so put it before the refiner that makes the label '
                "(e.g. [PAMRRefiner, BackgroundThreshold])")
        img = np.asarray(sample['img'])
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"PAMRRefiner needs an (H, W, 3) image for {sample.get('img_id')}, "
                             f'got {img.shape}')
        cams = np.asarray(sample['cams'], dtype=np.float32)
        if cams.ndim != 3:
            raise ValueError(f"cams of {sample.get('img_id')} must be (K, H, W), got {cams.shape}")
        if cams.shape[0] == 0:
            sample['cams'] = np.zeros((0,) + img.shape[:2], dtype=np.float32)
            return sample
        guide = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).permute(2, 0, 1)
        with torch.no_grad():
            refined = self.pamr(guide[None], torch.from_numpy(cams)[None])[0]
            sample['cams'] = normalise_by_max(refined, self.eps).numpy().astype(np.float32)
        return sample

    def __repr__(self) -> str:
        return (f'PAMRRefiner(num_iter={self.pamr.num_iter}, dilations={self.pamr.dilations}, '
                f'eps={self.eps})')
