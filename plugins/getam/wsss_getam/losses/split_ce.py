"""Split cross-entropy: background and foreground pixels averaged separately (GETAM / RRM).

From the pseudo label ``y`` (0 = background, 1..C, 255 = ignore)::

    y_bg = y where y == 0, else 255        y_fg = y where y != 0, else 255
    L    = CE(z, y_bg) + CE(z, y_fg)

each ``CE`` the mean of ``-log softmax(z)_y`` over its own non-ignored pixels (no class
weights), so background and foreground weigh the same whatever their pixel counts.  Where the
reference takes the mean over zero pixels (a batch with no background, or no foreground,
pixel) and gets NaN, this term is 0 here: finite, and with a (zero) gradient.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from wsss_core.registry import MODELS

__all__ = ['SplitCrossEntropyLoss', 'masked_mean_ce', 'resize_logits']

IGNORE_INDEX = 255


def resize_logits(logits: torch.Tensor, size) -> torch.Tensor:
    """``logits`` resized bilinearly (align_corners=False) to ``size`` when they differ."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode='bilinear', align_corners=False)


def masked_mean_ce(logits: torch.Tensor, target: torch.Tensor,
                   ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Mean CE over the pixels of ``target`` that are not ``ignore_index``; 0 if there are none."""
    total = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction='sum')
    count = (target != ignore_index).sum()
    return total / count.clamp_min(1)


@MODELS.register_module()
class SplitCrossEntropyLoss(nn.Module):
    """``CE(z, y_bg) + CE(z, y_fg)`` (module docstring), times ``loss_weight``.

    ``forward(seg_logits (B, C+1, h, w), label (B, H, W) or (B, 1, H, W))``; the logits are
    resized bilinearly (align_corners=False) to the label size first, as in the reference.
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX, loss_weight: float = 1.0):
        super().__init__()
        self.ignore_index = int(ignore_index)
        self.loss_weight = float(loss_weight)

    def split(self, label: torch.Tensor):
        """``(y_bg, y_fg)`` of a pseudo label."""
        ignore = torch.full_like(label, self.ignore_index)
        y_bg = torch.where(label == 0, label, ignore)
        y_fg = torch.where(label == 0, ignore, label)
        return y_bg, y_fg

    def forward(self, seg_logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        if label.ndim == 4:
            label = label[:, 0]
        label = label.long()
        logits = resize_logits(seg_logits, label.shape[-2:])
        y_bg, y_fg = self.split(label)
        loss = (masked_mean_ce(logits, y_bg, self.ignore_index)
                + masked_mean_ce(logits, y_fg, self.ignore_index))
        return self.loss_weight * loss

    def extra_repr(self) -> str:
        return f'ignore_index={self.ignore_index}, loss_weight={self.loss_weight}'
