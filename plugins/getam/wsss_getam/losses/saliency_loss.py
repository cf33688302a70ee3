"""Saliency loss: binary cross-entropy on the background probability (GETAM ``--sal_loss``).

    p_bg = softmax(z)[:, 0]
    L    = mean_x BCE(p_bg(x), t(x)) = -mean_x [t log p_bg + (1 - t) log(1 - p_bg)]

Two targets ``t`` (``docs/methods/getam.md#26-losses``):

* ``mode='intended'`` (default): ``t = 1 - s`` with ``s`` the binary saliency (1 where the saliency map
  is > 0): background probability high off the salient object.
* ``mode='reference'`` (what the released code computes): ``t = 1`` everywhere except
  at the pixels the label completion claimed, where ``t = 0``.  The reference builds its target
  as ``1 - int(saliency / 255)`` from a saliency array that was already binarised to {0, 1} in
  place (so ``int(s / 255) = 0``) and then overwritten with 255 at the completed pixels (so
  ``int(255 / 255) = 1`` there).  See :func:`wsss_getam.online_labels.online_pseudo_labels`,
  which returns both ``salient`` and ``completed``.

Computed in log space (``log p_bg = log_softmax(z)[:, 0]``, ``log(1 - p_bg) = logsumexp`` of the
other channels' log-probabilities), each log clamped at -100 like ``F.binary_cross_entropy``;
this equals BCE on the soft-max probabilities and is safe under autocast.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from wsss_core.registry import MODELS

from .split_ce import resize_logits

__all__ = ['SaliencyLoss', 'saliency_target', 'MODES']

MODES = ('intended', 'reference')


def saliency_target(mode: str, salient: torch.Tensor,
                    completed: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The BCE target ``t`` (module docstring) as float ``(B, H, W)``."""
    if mode == 'intended':
        return 1.0 - (salient > 0).float()
    if mode == 'reference':
        if completed is None:
            raise ValueError("SaliencyLoss(mode='reference') needs the completed-pixel mask "
                             '(online_pseudo_labels(...).completed)')
        return 1.0 - completed.bool().float()
    raise ValueError(f'SaliencyLoss mode must be one of {MODES}, not {mode!r}')


@MODELS.register_module()
class SaliencyLoss(nn.Module):
    """BCE of the background probability against a saliency target (module docstring).

    ``forward(seg_logits (B, C+1, h, w), salient (B, H, W), completed (B, H, W) or None)``;
    the logits are resized bilinearly (align_corners=False) to the target size first.

    Args:
        mode: ``'intended'`` (1 - saliency, the default) or ``'reference'`` (the released
            code's target).
        loss_weight: multiplies the loss.
    """

    def __init__(self, mode: str = 'intended', loss_weight: float = 1.0):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f'SaliencyLoss mode must be one of {MODES}, not {mode!r}')
        self.mode = mode
        self.loss_weight = float(loss_weight)

    def forward(self, seg_logits: torch.Tensor, salient: torch.Tensor,
                completed: Optional[torch.Tensor] = None) -> torch.Tensor:
        target = saliency_target(self.mode, salient, completed)
        logp = resize_logits(seg_logits.float(), target.shape[-2:]).log_softmax(1)
        log_bg = logp[:, 0].clamp_min(-100.0)
        log_not_bg = logp[:, 1:].logsumexp(1).clamp_min(-100.0)
        bce = -(target * log_bg + (1.0 - target) * log_not_bg)
        return self.loss_weight * bce.mean()

    def extra_repr(self) -> str:
        return f'mode={self.mode!r}, loss_weight={self.loss_weight}'
