"""Segmentation loss over the multi-scale outputs, ignore 255, safe on all-ignored batches.

For each output ``y^(k)`` (B, C, h_k, w_k) of the network (with MSC: full scale, 0.5, 0.75,
max fusion) the label map ``t`` (B, H, W) is brought to (h_k, w_k) by PIL nearest-neighbour
(:func:`~wsss_core.datasets.label_resize.resize_labels_nearest`, not by upsampling the scores), and

    L_k = (1 / |V_k|) sum_{p in V_k} -log softmax(y^(k)_p)[t_p],   V_k = {p : t_p != 255}
    L   = sum_k w_k L_k     (w_k = 1 in the reference)

(``docs/methods/deeplab.md#44-loss``; the division by ``ITER_SIZE`` is the optimiser
wrapper's ``accumulative_counts``).  PyTorch's mean-reduced cross entropy is 0/0 = NaN when
``V_k`` is empty, which happens in WSSS when a pseudo label ignores a whole image; here an
empty ``V_k`` gives ``L_k = 0`` (still connected to the graph, so every parameter gets a
zero gradient), and the caller counts such batches.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F

from wsss_core.datasets.label_resize import resize_labels_nearest

__all__ = ['IGNORE_INDEX', 'safe_cross_entropy', 'multi_output_loss']

IGNORE_INDEX = 255


def safe_cross_entropy(logits: torch.Tensor, target: torch.Tensor,
                       ignore_index: int = IGNORE_INDEX):
    """Mean CE over the non-ignored pixels; ``(loss, n_valid)``; 0 (not NaN) when none is valid."""
    target = target.long()
    valid = target != ignore_index
    n_valid = int(valid.sum())
    if n_valid == 0:
        return logits.sum() * 0.0, 0
    total = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction='sum')
    return total / n_valid, n_valid


def multi_output_loss(outputs: Sequence[torch.Tensor], target: torch.Tensor,
                      names: Optional[Sequence[str]] = None,
                      weights: Optional[Sequence[float]] = None,
                      ignore_index: int = IGNORE_INDEX) -> Dict[str, torch.Tensor]:
    """``{'loss_<name>': L_k}`` for every output (see the module docstring).

    ``target`` is (B, H, W) at input resolution; each output gets its own PIL-nearest
    downsampled copy.
    """
    names = list(names) if names is not None else [str(i) for i in range(len(outputs))]
    weights = list(weights) if weights is not None else [1.0] * len(outputs)
    if not len(names) == len(weights) == len(outputs):
        raise ValueError(f'{len(outputs)} outputs, {len(names)} names, {len(weights)} weights')
    losses = {}
    for name, weight, logits in zip(names, weights, outputs):
        small = resize_labels_nearest(target, logits.shape[-2:])
        loss, _ = safe_cross_entropy(logits, small, ignore_index)
        losses[f'loss_{name}'] = loss * float(weight)
    return losses
