"""Nearest-neighbour label resizing with PIL's exact semantics
(``docs/methods/deeplab.md#44-loss``).

deeplab-pytorch brings a label map to each score map's size with
``PIL.Image.resize(size, NEAREST)``; it had misaligned labels before that (its issue #51:
``F.interpolate(mode='nearest')`` samples ``floor(i * in / out)``, shifted towards the top
left).  PIL samples pixel centres: output index ``i`` reads input index

    src(i) = floor(x_i),   x_0 = (in / out) / 2,   x_{i+1} = x_i + in / out

where the sum is accumulated in double precision, step by step, exactly as Pillow's
affine nearest-neighbour loop does (so ties such as 2 -> 7 pixels, where ``x_3`` is 1 in
exact arithmetic but ``0.99999...`` in floating point, resolve as in PIL; the closed form
``floor((i + 0.5) * in / out)`` of ``mode='nearest-exact'`` differs there).  Indices are
clipped to ``in - 1``.  The tests compare against Pillow directly.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Tuple

import numpy as np
import torch

__all__ = ['pil_nearest_indices', 'resize_labels_nearest']


@lru_cache(maxsize=256)
def _indices(n_in: int, n_out: int) -> Tuple[int, ...]:
    step = float(n_in) / float(n_out)
    increments = np.full(n_out, step, dtype=np.float64)
    increments[0] = step * 0.5
    coords = np.add.accumulate(increments)  # sequential float64 sums, like PIL's loop
    idx = np.floor(coords).astype(np.int64)
    return tuple(np.clip(idx, 0, n_in - 1).tolist())


def pil_nearest_indices(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each of ``n_out`` output pixels along an axis of ``n_in`` pixels."""
    if n_in < 1 or n_out < 1:
        raise ValueError(f'sizes must be positive, got {n_in} -> {n_out}')
    return np.asarray(_indices(int(n_in), int(n_out)), dtype=np.int64)


def resize_labels_nearest(labels: torch.Tensor, size) -> torch.Tensor:
    """Resize label maps ``(..., H, W)`` to ``size = (h, w)`` like PIL's NEAREST.

    Works on any integer or float tensor (values are copied, never interpolated).
    """
    h, w = int(size[0]), int(size[1])
    H, W = labels.shape[-2:]
    if (H, W) == (h, w):
        return labels
    rows = torch.from_numpy(pil_nearest_indices(H, h)).to(labels.device)
    cols = torch.from_numpy(pil_nearest_indices(W, w)).to(labels.device)
    return labels.index_select(-2, rows).index_select(-1, cols)
