"""Multi-scale inputs with pixel-wise max fusion (MSC; Chen et al., TPAMI 2018, §3.3).

For an input ``x`` of size H x W and scales S (reference: 0.5 and 0.75, besides 1.0) the
shared network ``f`` runs on each rescaled input, the coarser score maps are brought to the
size of the full-scale one, and the fused map takes the maximum per pixel and class:

    x_s   = bilinear(x, scale_factor = s)            (size floor(s H) x floor(s W))
    y_1   = f(x),   y_s = f(x_s)
    y_max = max(y_1, up(y_{s_1}), up(y_{s_2}), ...)   (up: bilinear to the size of y_1)

Bilinear resizing uses ``align_corners=False`` throughout.  In training all the maps are
returned, ``[y_1, y_{s_1}, y_{s_2}, ..., y_max]`` (each at its own size, so each gets its own
loss against a label map resized to it); in evaluation only ``y_max``.

Shapes for a 321 crop at output stride 8 (``docs/methods/deeplab.md#41-model``): 41x41 (1.0),
21x21 (0.5, input 160), 31x31 (0.75, input 240), max 41x41.
"""
from __future__ import annotations

from typing import Callable, List, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from wsss_core.models.rescale import rescale_input

__all__ = ['msc_forward', 'max_fuse', 'MSC']


def max_fuse(full: torch.Tensor, others: Sequence[torch.Tensor]) -> torch.Tensor:
    """Pixel-wise max of ``full`` and the ``others`` bilinearly resized to ``full``'s size."""
    out = full
    for y in others:
        if y.shape[-2:] != full.shape[-2:]:
            y = F.interpolate(y, size=full.shape[-2:], mode='bilinear', align_corners=False)
        out = torch.maximum(out, y)
    return out


def msc_forward(base: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                scales: Sequence[float], training: bool
                ) -> Union[torch.Tensor, List[torch.Tensor]]:
    """Run ``base`` on ``x`` and on ``x`` rescaled by each of ``scales`` and fuse by max.

    Returns ``[y_1, y_s..., y_max]`` when ``training``, else ``y_max``; with no scales, just
    ``y_1`` (a list of one when training).
    """
    full = base(x)
    if not scales:
        return [full] if training else full
    others = [base(rescale_input(x, float(s))) for s in scales]
    fused = max_fuse(full, others)
    return [full, *others, fused] if training else fused


class MSC(nn.Module):
    """``nn.Module`` form of :func:`msc_forward` around a ``base`` network."""

    def __init__(self, base: nn.Module, scales: Sequence[float] = (0.5, 0.75)):
        super().__init__()
        self.base = base
        self.scales = tuple(float(s) for s in scales)

    def forward(self, x: torch.Tensor):
        return msc_forward(self.base, x, self.scales, self.training)
