"""Resizing an input batch by a scale factor, as the segmentation references do."""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ['rescale_input']


def rescale_input(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Bilinear ``align_corners=False`` resize by ``scale`` (size ``floor(scale * H)``), as
    ``F.interpolate(scale_factor=scale)`` does in the reference."""
    if scale == 1.0:
        return x
    return F.interpolate(x, scale_factor=scale, mode='bilinear', align_corners=False,
                         recompute_scale_factor=False)
