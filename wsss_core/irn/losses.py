"""IRN's training losses (Ahn, Cho & Kwak, CVPR 2019): affinities and displacements on pairs.

For the pair sets of :mod:`wsss_core.irn.affinity_labels` (``P+_bg``, ``P+_fg``, ``P-``), the
affinities ``a_ij`` of :func:`~wsss_core.irn.pairs.affinity_from_boundary` and the
displacement field ``D`` (2 channels, grid cells):

    L_aff = (L_pos + L_neg) / 2,   L_pos = L_bg_pos / 2 + L_fg_pos / 2
    L_dp  = (L_dp_fg + L_dp_bg) / 2
    L     = L_aff + L_dp

Each term is the mean over its own pairs, and exactly 0 when there is no pair of that kind
(pairs are pooled over the whole batch, as in IRN).  :func:`irn_loss_terms` returns the five
terms already weighted (``loss_*`` keys; mmengine sums them to ``L``).
"""
from __future__ import annotations

from typing import Dict

import torch

from .affinity_labels import PairLabels
from .pairs import pair_offsets, pair_view

__all__ = ['EPS', 'masked_mean', 'affinity_loss_terms', 'displacement_loss_terms',
           'irn_loss_terms']

#: inside the logs: -log(a + eps), -log(1 + eps - a) (IRN's 1e-5)
EPS = 1e-5


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sum_{mask} values / |mask|``, and 0 (not NaN) for an empty mask."""
    mask = mask.expand_as(values)
    total = torch.where(mask, values, torch.zeros((), dtype=values.dtype,
                                                  device=values.device)).sum()
    return total / mask.sum().clamp_min(1).to(values.dtype)


def affinity_loss_terms(affinity: torch.Tensor, pairs: PairLabels,
                        eps: float = EPS) -> Dict[str, torch.Tensor]:
    """The cross-entropy terms of the affinities (IRN eq. for L_aff)::

        L_bg_pos = -1/|P+_bg| sum_{P+_bg} log(a_ij + eps)
        L_fg_pos = -1/|P+_fg| sum_{P+_fg} log(a_ij + eps)
        L_neg    = -1/|P-|    sum_{P-}    log(1 + eps - a_ij)

    Args:
        affinity: ``(B, P, H', W')`` in [0, 1].
        pairs: masks of the same shape.
    """
    affinity = affinity.float()          # 1 + eps is 1 in half precision: keep the logs finite
    pos = -torch.log(affinity + eps)
    neg = -torch.log(1.0 + eps - affinity)
    return dict(bg_pos=masked_mean(pos, pairs.bg_pos), fg_pos=masked_mean(pos, pairs.fg_pos),
                neg=masked_mean(neg, pairs.neg))


def displacement_loss_terms(displacement: torch.Tensor, pairs: PairLabels,
                            radius: int) -> Dict[str, torch.Tensor]:
    """The L1 terms of the displacement field (IRN eqs. for L^D_fg and L^D_bg).

    A pixel ``x_i`` plus its displacement ``D(x_i)`` should land on its instance's centroid,
    so for a pair of the same instance ``x_i + D(x_i) = x_j + D(x_j)``, i.e. the displacement
    difference ``delta(i, j) = D(x_i) - D(x_j)`` equals the pair offset ``o = x_j - x_i``; on
    background pairs the field should not vary (``delta = 0``)::

        L_dp_fg = 1/|P+_fg| sum_{P+_fg} |delta(i, j) - o_ij|_1 / 2
        L_dp_bg = 1/|P+_bg| sum_{P+_bg} |delta(i, j)|_1 / 2

    (the L1 norm over the two coordinates, halved: the mean over coordinates, as the IRN
    reference computes it).

    Args:
        displacement: ``(B, 2, h, w)`` (dy, dx) in grid cells.
        pairs: masks ``(B, P, H', W')`` of the same grid and radius.
    """
    src, dst = pair_view(displacement.float(), radius)               # (B, 2, P, H', W')
    delta = src - dst
    offsets = torch.tensor(pair_offsets(radius), dtype=delta.dtype, device=delta.device)
    target = offsets.t().reshape(1, 2, -1, 1, 1)                     # (1, 2, P, 1, 1)
    fg = (delta - target).abs().mean(dim=1)                          # (B, P, H', W')
    bg = delta.abs().mean(dim=1)
    return dict(fg=masked_mean(fg, pairs.fg_pos), bg=masked_mean(bg, pairs.bg_pos))


def irn_loss_terms(affinity: torch.Tensor, displacement: torch.Tensor, pairs: PairLabels,
                   radius: int) -> Dict[str, torch.Tensor]:
    """The weighted terms of ``L`` (module docstring); their sum is IRN's loss::

        loss_bg_pos_aff = L_bg_pos / 4      loss_fg_pos_aff = L_fg_pos / 4
        loss_neg_aff    = L_neg / 2
        loss_dp_fg      = L_dp_fg / 2       loss_dp_bg      = L_dp_bg / 2
    """
    aff = affinity_loss_terms(affinity, pairs)
    dp = displacement_loss_terms(displacement, pairs, radius)
    return dict(loss_bg_pos_aff=aff['bg_pos'] / 4, loss_fg_pos_aff=aff['fg_pos'] / 4,
                loss_neg_aff=aff['neg'] / 2, loss_dp_fg=dp['fg'] / 2, loss_dp_bg=dp['bg'] / 2)
