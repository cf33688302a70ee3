"""Random-walk propagation of CAMs over IRN's boundary-derived affinities (Ahn, Cho & Kwak,
CVPR 2019, "synthesizing pseudo instance / semantic labels"; irn ``make_sem_seg_labels``).

On the stride-4 grid of ``n = h * w`` cells, with the class-boundary map ``B``:

1. pad ``B`` with 1 by ``r - 1`` on the left, right and bottom, so every grid cell is a "from"
   pixel of :mod:`.pairs` and every pair leaving the grid crosses boundary 1 (affinity 0);
2. ``a_ij = 1 - max_{k in path(i -> j)} B_k`` for the pairs within radius ``r``
   (:func:`~wsss_core.irn.pairs.affinity_from_boundary`), ``A`` symmetric with ``A_ii = 1``;
3. ``T = A^beta / colsum(A^beta)`` (elementwise power; each column of ``T`` sums to 1);
4. seeds ``s_k = M_k * (1 - B)`` (the stride-4 CAMs, damped on boundaries);
5. ``v = s T^t`` with ``t = 2^exp_times`` (irn: beta 10, exp_times 8, radius 5).

irn forms ``T^t`` densely by squaring an ``n x n`` matrix ``exp_times`` times: O(n^2) memory and
O(n^3) time, which runs out of GPU memory on large images
(``docs/methods/baseline.md#46-random-walk-labels``).  Here
:func:`random_walk` applies the sparse ``T`` ``t`` times instead, as a spatially varying
``(2r-1) x (2r-1)`` stencil: since ``A^beta`` is symmetric, ``(s T)^T = D^-1 A^beta s^T`` with
``D = diag(colsum A^beta)``, i.e. each step replaces ``s(p)`` by the ``A^beta``-weighted mean of
``s`` over ``p``'s disc of radius ``r`` (O(n r^2) per step, no n x n matrix).  :func:`transition_matrix` is the dense reference.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .pairs import affinity_from_boundary, pair_offsets

__all__ = ['pad_boundary', 'grid_affinity', 'transition_matrix', 'transition_stencil',
           'walk', 'random_walk', 'propagate_scores', 'propagate_cams']


def _as_grid(boundary) -> torch.Tensor:
    """``(h, w)`` from a ``(h, w)``, ``(1, h, w)`` or ``(1, 1, h, w)`` map."""
    b = torch.as_tensor(boundary)
    while b.dim() > 2 and b.shape[0] == 1:
        b = b[0]
    if b.dim() != 2:
        raise ValueError(f'boundary must be one (h, w) map (or (1, h, w), (1, 1, h, w)), got '
                         f'shape {tuple(torch.as_tensor(boundary).shape)}')
    return b


def pad_boundary(boundary: torch.Tensor, radius: int) -> torch.Tensor:
    """Step 1: pad ``(..., h, w)`` with 1 by ``r - 1`` left, right and bottom (none on top)."""
    reach = int(radius) - 1
    return F.pad(boundary, (reach, reach, 0, reach), value=1.0)


def grid_affinity(boundary, radius: int) -> torch.Tensor:
    """Step 2: pair affinities ``(P, h, w)`` of every grid cell to its :func:`pair_offsets`
    neighbours, ``a_ij = 1 - max_path B``; pairs leaving the grid get 0."""
    b = _as_grid(boundary)
    return affinity_from_boundary(pad_boundary(b, radius)[None, None], radius)[0]


def _target_inside(h: int, w: int, offset: Tuple[int, int], device) -> torch.Tensor:
    """``(h, w)`` bool: the pair ``p -> p + offset`` stays inside the grid."""
    dy, dx = offset
    ys = torch.arange(h, device=device).view(h, 1) + dy
    xs = torch.arange(w, device=device).view(1, w) + dx
    return (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)


def _check_affinity(affinity: torch.Tensor, radius: int) -> torch.Tensor:
    offsets = pair_offsets(radius)
    if affinity.dim() != 3 or affinity.shape[0] != len(offsets):
        raise ValueError(f'affinity must be (P, h, w) with P = {len(offsets)} pairs for radius '
                         f'{radius}, got shape {tuple(affinity.shape)}')
    return affinity.clamp(0.0, 1.0)   # a boundary slightly outside [0, 1] must not flip signs


def transition_matrix(affinity: torch.Tensor, radius: int, beta: float) -> torch.Tensor:
    """Steps 2-3 densely (the reference): ``T = A^beta / colsum(A^beta)``, ``(n, n)``.

    ``A_ij = A_ji = a_ij`` for every pair of ``affinity`` ``(P, h, w)`` (from :func:`grid_affinity`,
    pair ``p`` of cell ``i = y w + x`` going to ``j = i + o_p``) whose target lies in the grid,
    ``A_ii = 1``, 0 elsewhere; affinities are clamped to [0, 1].  O(n^2) memory: small maps only.
    """
    affinity = _check_affinity(affinity, radius)
    _, h, w = affinity.shape
    n = h * w
    a = torch.eye(n, dtype=affinity.dtype, device=affinity.device)
    index = torch.arange(n, device=affinity.device).view(h, w)
    for p, (dy, dx) in enumerate(pair_offsets(radius)):
        inside = _target_inside(h, w, (dy, dx), affinity.device)
        src = index[inside]
        dst = src + dy * w + dx
        a[src, dst] = affinity[p][inside]
        a[dst, src] = affinity[p][inside]
    a = a.pow(beta)
    return a / a.sum(dim=0, keepdim=True)


def transition_stencil(affinity: torch.Tensor, radius: int, beta: float) -> torch.Tensor:
    """Steps 2-3 as a stencil: ``W (Q, h, w)``, ``Q = (2r - 1)^2``, with
    ``W[q(u, v), p] = A^beta_{p, p + (u, v)} / d_p`` and ``d_p = sum_j A^beta_pj``.

    ``q(u, v) = (u + r - 1)(2r - 1) + (v + r - 1)`` is the position of the neighbour ``(u, v)``
    in a ``(2r - 1) x (2r - 1)`` window (row-major).  The forward pair ``p -> p + o`` has weight
    ``a_o(p)``; the backward one ``p -> p - o`` the weight ``a_o(p - o)`` of the pair seen from
    ``p - o``; the centre has weight 1.
    """
    affinity = _check_affinity(affinity, radius)
    _, h, w = affinity.shape
    reach = int(radius) - 1
    side = 2 * reach + 1
    weights = affinity.new_zeros((side * side, h, w))
    weights[reach * side + reach] = 1.0
    for p, (dy, dx) in enumerate(pair_offsets(radius)):
        fwd = affinity[p].pow(beta) * _target_inside(h, w, (dy, dx), affinity.device)
        weights[(dy + reach) * side + dx + reach] = fwd
        # backward weight at cell c is fwd at c - o: shift fwd by +o (zeros come in)
        shifted = F.pad(fwd, (reach, reach, reach, reach))
        weights[(reach - dy) * side + reach - dx] = \
            shifted[reach - dy:reach - dy + h, reach - dx:reach - dx + w]
    return weights / weights.sum(dim=0, keepdim=True)


def walk(seeds: torch.Tensor, stencil: torch.Tensor, steps: int) -> torch.Tensor:
    """Apply the stencil ``steps`` times: ``s(p) <- sum_q W[q, p] s(p + (u_q, v_q))``, which is
    ``s <- s T`` for the column-normalised ``T`` (``s`` is 0 outside the grid).

    One step is a sum of shifted copies of ``s`` (the ``2 |offsets| + 1`` window positions inside
    the disc), O(K n r^2) time and O(K n) extra memory.
    """
    k, h, w = seeds.shape
    side = int(round(stencil.shape[0] ** 0.5))
    if side * side != stencil.shape[0] or stencil.shape[1:] != (h, w):
        raise ValueError(f'stencil {tuple(stencil.shape)} does not fit seeds {tuple(seeds.shape)}')
    reach = (side - 1) // 2
    window = [(u, v) for u in range(side) for v in range(side)
              if (u - reach) ** 2 + (v - reach) ** 2 < (reach + 1) ** 2]
    s = seeds
    for _ in range(int(steps)):
        padded = F.pad(s, (reach, reach, reach, reach))
        out = torch.zeros_like(s)
        for u, v in window:
            out.addcmul_(stencil[u * side + v], padded[:, u:u + h, v:v + w])
        s = out
    return s


def random_walk(seeds, boundary, radius: int = 5, beta: float = 10,
                exp_times: int = 8) -> torch.Tensor:
    """Steps 1-3 and 5: ``v = s T^t``, ``t = 2^exp_times``, computed as ``t`` sparse steps.

    Args:
        seeds: ``(K, h, w)`` maps to propagate (already damped by ``1 - B`` if wanted; see
            :func:`propagate_scores`).
        boundary: the ``(h, w)`` class-boundary map in [0, 1] (or ``(1, h, w)``,
            ``(1, 1, h, w)``) on the same grid.
        radius, beta, exp_times: irn's 5, 10 and 8 (256 steps).

    Returns:
        ``(K, h, w)`` propagated maps, dtype and device of ``seeds``.
    """
    seeds = torch.as_tensor(seeds)
    b = _as_grid(boundary).to(device=seeds.device, dtype=seeds.dtype)
    if seeds.dim() != 3 or seeds.shape[1:] != b.shape:
        raise ValueError(f'seeds must be (K, h, w) on the boundary grid {tuple(b.shape)}, got '
                         f'{tuple(seeds.shape)}')
    if seeds.shape[0] == 0:
        return seeds.clone()
    stencil = transition_stencil(grid_affinity(b, radius), radius, beta)
    return walk(seeds, stencil, 2 ** int(exp_times))


def propagate_scores(cams, boundary, image_size: Sequence[int], radius: int = 5,
                     beta: float = 10, exp_times: int = 8) -> torch.Tensor:
    """irn ``make_sem_seg_labels`` scores ``(K, H, W)`` in [0, 1] from stride-4 CAMs:
    seeds ``M_k (1 - B)`` (step 4), :func:`random_walk` (step 5), bilinear x4 upsampling, crop to
    ``image_size = (H, W)``, division by the global maximum over classes and pixels."""
    cams = torch.as_tensor(cams, dtype=torch.float32)
    b = _as_grid(boundary).to(device=cams.device, dtype=cams.dtype)
    height, width = int(image_size[0]), int(image_size[1])
    if cams.dim() != 3 or cams.shape[1:] != b.shape:
        raise ValueError(f'stride-4 cams must be (K, h, w) on the boundary grid '
                         f'{tuple(b.shape)}, got {tuple(cams.shape)}')
    if 4 * b.shape[0] < height or 4 * b.shape[1] < width:
        raise ValueError(f'a {tuple(b.shape)} stride-4 grid does not cover a {height}x{width} '
                         f'image (it needs ceil(H/4) x ceil(W/4))')
    if cams.shape[0] == 0:
        return cams.new_zeros((0, height, width))
    walked = random_walk(cams * (1.0 - b), b, radius, beta, exp_times)
    up = F.interpolate(walked[None], scale_factor=4, mode='bilinear', align_corners=False)
    up = up[0, :, :height, :width]
    peak = up.max()
    return up / peak if peak > 0 else up


def propagate_cams(cams, boundary, class_ids: Sequence[int], image_size: Sequence[int],
                   radius: int = 5, beta: float = 10, exp_times: int = 8,
                   bg_threshold: float = 0.25) -> np.ndarray:
    """The pseudo label ``(H, W)`` uint8: ``argmax over [bg_threshold, V_1, ..., V_K]`` of the
    :func:`propagate_scores` ``V``, index 0 -> 0, index i -> ``class_ids[i - 1] + 1`` (the
    background is never propagated; irn's threshold is 0.25)."""
    scores = propagate_scores(cams, boundary, image_size, radius, beta, exp_times)
    class_ids = np.asarray(class_ids, dtype=np.int64).reshape(-1)
    if class_ids.size != scores.shape[0]:
        raise ValueError(f'{scores.shape[0]} CAMs but {class_ids.size} class ids')
    bg = scores.new_full((1,) + tuple(scores.shape[1:]), float(bg_threshold))
    index = torch.cat([bg, scores]).argmax(dim=0).cpu().numpy()
    values = np.concatenate([[0], class_ids + 1]).astype(np.uint8)
    return values[index]
