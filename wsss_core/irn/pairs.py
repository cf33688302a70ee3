"""Pixel-pair geometry of IRN (Ahn, Cho & Kwak, CVPR 2019) on a feature grid.

Pairs ``(i, j)`` link a pixel ``i`` to the neighbours ``j = i + o`` within a radius ``r``.  Only
one half plane of offsets is kept (:func:`pair_offsets`): the other half is the same pairs seen
from ``j``, so every unordered pair appears once.

Interior region (the convention every function here uses).  All offsets have ``dy >= 0`` and
``|dx| <= r - 1``, so for a map ``(..., H, W)`` the "from" pixels are::

    rows 0 .. H - r            (H' = H - (r - 1): nothing cropped on top, r - 1 at the bottom)
    cols r - 1 .. W - r        (W' = W - 2 (r - 1): r - 1 cropped on the left and the right)

and the "to" pixel of offset ``(dy, dx)`` for the from-pixel at interior position ``(y, x)`` is
``(y + dy, x + r - 1 + dx)`` of the full map, always inside it.  To make every pixel of an
``h x w`` grid a "from" pixel, pad the map by ``r - 1`` on the left, right and bottom (IRN pads
the boundary map with 1, so pairs leaving the grid get affinity 0): then ``H', W' = h, w``.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import List, Sequence, Tuple

import torch

__all__ = ['pair_offsets', 'interior_shape', 'crop_interior', 'shift_interior', 'pair_view',
           'path_offsets', 'path_max', 'affinity_from_boundary']

Offset = Tuple[int, int]


@lru_cache(maxsize=None)
def _pair_offsets(radius: int) -> Tuple[Offset, ...]:
    reach = radius - 1
    out = [(0, dx) for dx in range(1, reach + 1)]
    out += [(dy, dx) for dy in range(1, reach + 1) for dx in range(-reach, reach + 1)]
    return tuple((dy, dx) for dy, dx in out if dy * dy + dx * dx < radius * radius)


def pair_offsets(radius: int) -> List[Offset]:
    """IRN's half-plane neighbourhood: offsets ``(dy, dx)`` with ``dy*dy + dx*dx < radius**2``,
    taken from ``dy = 0, dx = 1 .. radius-1`` and ``dy = 1 .. radius-1, dx = -(radius-1) ..
    radius-1``.

    Together with their negations (and ``(0, 0)``) they are all the grid points of the open
    disc of that radius.  Radius 5 gives 34 offsets, psa's "34 directions (radius 5)"
    (``docs/methods/baseline.md#35-affinitynet-training``: 4 + 9 + 9 + 7 + 5 for
    dy = 0..4); radius 10 (IRN training) gives 152.
    """
    radius = int(radius)
    if radius < 2:
        raise ValueError(f'the pair radius must be >= 2 (radius 1 has no neighbours), got {radius}')
    return list(_pair_offsets(radius))


def interior_shape(height: int, width: int, radius: int) -> Tuple[int, int]:
    """``(H', W') = (H - (r-1), W - 2(r-1))``: the from-pixel region (module docstring)."""
    reach = int(radius) - 1
    h, w = int(height) - reach, int(width) - 2 * reach
    if h < 1 or w < 1:
        raise ValueError(f'a {height}x{width} map is too small for pairs of radius {radius}: it '
                         f'needs at least {reach + 1} rows and {2 * reach + 1} columns; pad it by '
                         f'{reach} on the left, right and bottom first')
    return h, w


def crop_interior(x: torch.Tensor, radius: int) -> torch.Tensor:
    """The from-pixel values ``x[..., 0:H', r-1:r-1+W']`` (a view)."""
    h, w = interior_shape(x.shape[-2], x.shape[-1], radius)
    reach = int(radius) - 1
    return x[..., :h, reach:reach + w]


def shift_interior(x: torch.Tensor, offset: Offset, radius: int) -> torch.Tensor:
    """The to-pixel values of ``offset`` over the interior: ``x[..., dy:dy+H', r-1+dx:r-1+dx+W']``
    (a view), i.e. ``out[..., y, x] = x[..., y + dy, x + r - 1 + dx]``."""
    h, w = interior_shape(x.shape[-2], x.shape[-1], radius)
    reach = int(radius) - 1
    dy, dx = int(offset[0]), int(offset[1])
    if not (0 <= dy <= reach and -reach <= dx <= reach):
        raise ValueError(f'offset {offset} is outside the half-plane window of radius {radius}')
    return x[..., dy:dy + h, reach + dx:reach + dx + w]


def pair_view(x: torch.Tensor, radius: int,
              offsets: Sequence[Offset] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """From/to values of every pair: ``(src, dst)``, both ``(..., P, H', W')``.

    ``src[..., p, y, x] = x[..., y, x + r - 1]`` (the from pixel; an expanded view, no copy) and
    ``dst[..., p, y, x] = x[..., y + dy_p, x + r - 1 + dx_p]`` (stacked, a copy), with
    ``offsets`` defaulting to :func:`pair_offsets` ``(radius)``.  E.g. pair labels are
    ``src == dst`` on a label map; displacement differences are ``dst - src``.
    """
    offsets = pair_offsets(radius) if offsets is None else list(offsets)
    dst = torch.stack([shift_interior(x, o, radius) for o in offsets], dim=-3)
    src = crop_interior(x, radius).unsqueeze(-3).expand_as(dst)
    return src, dst


@lru_cache(maxsize=None)
def _path_offsets(dy: int, dx: int) -> Tuple[Offset, ...]:
    steps = max(abs(dy), abs(dx))
    if steps == 0:
        return ((0, 0),)

    def round_half_away(v: float) -> int:  # symmetric under dx -> -dx (Python's round is not)
        return int(math.copysign(math.floor(abs(v) + 0.5), v))

    points = [(round_half_away(k * dy / steps), round_half_away(k * dx / steps))
              for k in range(steps + 1)]
    return tuple(dict.fromkeys(points))  # ordered, unique


def path_offsets(offset: Offset) -> List[Offset]:
    """Grid points of the straight segment from ``(0, 0)`` to ``offset``, both ends included.

    A digital (DDA) line: with ``n = max(|dy|, |dx|)`` the points are
    ``(round(k dy / n), round(k dx / n))`` for ``k = 0 .. n``, rounding halves away from zero
    (so the path of ``(dy, -dx)`` mirrors that of ``(dy, dx)``).  Consecutive points are
    8-neighbours (each step moves the major coordinate by 1, the other by at most 1), so a
    full-height column or full-width row of boundary pixels cannot be jumped over.
    """
    return list(_path_offsets(int(offset[0]), int(offset[1])))


def path_max(values: torch.Tensor, radius: int,
             offsets: Sequence[Offset] = None) -> torch.Tensor:
    """``out[b, p, y, x] = max_{k in path(o_p)} values[b, y + k_y, x + r - 1 + k_x]``.

    ``values`` is ``(B, H, W)``; the result is ``(B, P, H', W')``, differentiable with respect to
    ``values``.  The argmax along each path is found without gradient and the maxima are then
    gathered from ``values``, so autograd keeps one index per pair instead of every path value
    (the gradient reaches the maximal path point; ties go to the point nearest the start).
    """
    if values.dim() != 3:
        raise ValueError(f'path_max expects (B, H, W) values, got shape {tuple(values.shape)}')
    offsets = pair_offsets(radius) if offsets is None else list(offsets)
    bsz, height, width = values.shape
    h, w = interior_shape(height, width, radius)
    reach = int(radius) - 1
    device = values.device
    paths = [path_offsets(o) for o in offsets]
    longest = max(len(p) for p in paths)
    # per step, the flat shift of each offset's path point (short paths repeat their start)
    shifts = torch.tensor([[p[k][0] * width + p[k][1] if k < len(p) else 0 for p in paths]
                           for k in range(longest)], dtype=torch.long, device=device)
    rows = torch.arange(h, device=device).view(h, 1) * width
    base = rows + torch.arange(reach, reach + w, device=device).view(1, w)   # (H', W') flat
    flat = values.reshape(bsz, height * width)
    with torch.no_grad():
        best_idx = (base + shifts[0].view(-1, 1, 1)).expand(bsz, -1, -1, -1)
        best_val = flat[:, best_idx[0]]
        for k in range(1, longest):
            idx = base + shifts[k].view(-1, 1, 1)                              # (P, H', W')
            val = flat[:, idx]                                                  # (B, P, H', W')
            better = val > best_val
            best_val = torch.where(better, val, best_val)
            best_idx = torch.where(better, idx, best_idx)
    if not values.requires_grad:
        return best_val
    return torch.gather(flat, 1, best_idx.reshape(bsz, -1)).view(bsz, len(offsets), h, w)


def affinity_from_boundary(boundary: torch.Tensor, radius: int) -> torch.Tensor:
    """IRN's inter-pixel affinity from a class-boundary map (Ahn, Cho & Kwak, CVPR 2019,
    "inter-pixel affinity from the boundary map")::

        a_ij = 1 - max_{k in path(i -> j)} B(x_k)

    for every pair ``(i, j = i + o)``, ``o`` in :func:`pair_offsets` ``(radius)``, and
    ``path`` = :func:`path_offsets` (both ends included).

    Args:
        boundary: ``(B, 1, H, W)`` boundary probabilities in [0, 1].
        radius: the pair radius (IRN: 10 in training, 5 for the random walk).

    Returns:
        ``(B, P, H', W')`` affinities over the interior region (module docstring),
        differentiable with respect to ``boundary``.
    """
    if boundary.dim() != 4 or boundary.shape[1] != 1:
        raise ValueError(f'boundary must be (B, 1, H, W), got shape {tuple(boundary.shape)}')
    return 1.0 - path_max(boundary[:, 0], radius)
