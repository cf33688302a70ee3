"""Pair labels for training IRN's affinities from an IR label map (Ahn, Cho & Kwak, CVPR 2019).

The IR label (0 background, 1..C classes, 255 unsure) is sampled on the stride-4 grid of the
network (:func:`stride4_labels`), then every pair ``(i, j)`` of :func:`~wsss_core.irn.pairs.
pair_view` (radius 10 in training, over its interior region) gets one of three labels or none:

* **bg-positive** ``P+_bg``: ``l_i = l_j = 0`` (both background);
* **fg-positive** ``P+_fg``: ``l_i = l_j`` in ``1..C`` (the same class);
* **negative** ``P-``: ``l_i != l_j``, neither 255 (different labels, both confident);

a pair with a 255 end belongs to none.  (The same rules as AffinityNet,
``docs/methods/baseline.md#35-affinitynet-training``.)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..io import IGNORE_INDEX
from .pairs import pair_view

__all__ = ['PairLabels', 'stride4_labels', 'pair_labels']


@dataclass
class PairLabels:
    """Boolean masks ``(B, P, H', W')`` over the pairs of the interior region."""
    bg_pos: torch.Tensor
    fg_pos: torch.Tensor
    neg: torch.Tensor

    def counts(self) -> dict:
        """Number of pairs of each kind (plain ints)."""
        return dict(bg_pos=int(self.bg_pos.sum()), fg_pos=int(self.fg_pos.sum()),
                    neg=int(self.neg.sum()))


def stride4_labels(label: torch.Tensor, stride: int = 4) -> torch.Tensor:
    """Nearest sampling of a label map ``(..., H, W)`` on the network's grid:
    ``out[..., i, j] = label[..., stride * i, stride * j]``, size ``ceil(H / stride)``.

    Grid cell ``(i, j)`` of the ResNet stem is centred on pixel ``(4i, 4j)``, so this is the
    label at each cell's centre (IRN resizes its 512 crop with PIL nearest, which picks pixel
    ``4i + 2``: half a cell lower and to the right).
    """
    return label[..., ::stride, ::stride]


def pair_labels(labels: torch.Tensor, radius: int) -> PairLabels:
    """The three pair masks of a grid label map ``labels`` (B, h, w) (module docstring).

    With ``src``/``dst`` the from/to labels of each pair (:func:`pair_view`)::

        bg_pos = (src == dst) & (src == 0)
        fg_pos = (src == dst) & (src != 0) & (src != 255)
        neg    = (src != dst) & (src != 255) & (dst != 255)
    """
    if labels.dim() != 3:
        raise ValueError(f'pair_labels expects (B, h, w) labels, got shape {tuple(labels.shape)}')
    src, dst = pair_view(labels, radius)
    same = src == dst
    valid = (src != IGNORE_INDEX) & (dst != IGNORE_INDEX)
    return PairLabels(bg_pos=same & (src == 0),
                      fg_pos=same & valid & (src != 0),
                      neg=~same & valid)
