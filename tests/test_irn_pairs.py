"""IRN pair geometry: offsets, interior views, paths, boundary affinity vs naive loops."""
from __future__ import annotations

import pytest
import torch

from wsss_core.irn.pairs import (affinity_from_boundary, crop_interior, interior_shape,
                                 pair_offsets, pair_view, path_max, path_offsets)


# ----------------------------------------------------------------------------- offsets
def test_radius5_has_psa_34_directions():
    offs = pair_offsets(5)
    assert len(offs) == 34
    assert len(set(offs)) == 34


@pytest.mark.parametrize('radius', [2, 3, 5, 10])
def test_offsets_and_negations_tile_the_open_disc(radius):
    offs = set(pair_offsets(radius))
    neg = {(-dy, -dx) for dy, dx in offs}
    assert not offs & neg and (0, 0) not in offs
    disc = {(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)
            if dy * dy + dx * dx < radius * radius and (dy, dx) != (0, 0)}
    assert offs | neg == disc
    assert all(dy > 0 or (dy == 0 and dx > 0) for dy, dx in offs)   # the half plane


def test_radius_too_small_is_an_error():
    with pytest.raises(ValueError, match='radius'):
        pair_offsets(1)
    with pytest.raises(ValueError, match='too small'):
        interior_shape(3, 8, 5)


# ----------------------------------------------------------------------------- views
def test_pair_view_matches_index_arithmetic():
    radius, h, w = 3, 6, 9
    x = torch.arange(2 * h * w, dtype=torch.float32).view(2, h, w)
    src, dst = pair_view(x, radius)
    offs = pair_offsets(radius)
    hh, ww = interior_shape(h, w, radius)
    assert (hh, ww) == (h - 2, w - 4)
    assert src.shape == dst.shape == (2, len(offs), hh, ww)
    for b in range(2):
        for p, (dy, dx) in enumerate(offs):
            for y in range(hh):
                for xx in range(ww):
                    assert src[b, p, y, xx] == x[b, y, xx + radius - 1]
                    assert dst[b, p, y, xx] == x[b, y + dy, xx + radius - 1 + dx]
    assert torch.equal(crop_interior(x, radius), src[:, 0])


# ----------------------------------------------------------------------------- paths
def test_path_known_answers():
    assert path_offsets((0, 3)) == [(0, 0), (0, 1), (0, 2), (0, 3)]
    assert path_offsets((2, 2)) == [(0, 0), (1, 1), (2, 2)]
    assert path_offsets((3, 0)) == [(0, 0), (1, 0), (2, 0), (3, 0)]
    assert path_offsets((1, 0)) == [(0, 0), (1, 0)]
    assert path_offsets((0, 0)) == [(0, 0)]


@pytest.mark.parametrize('offset', pair_offsets(10))
def test_path_is_a_connected_digital_segment(offset):
    dy, dx = offset
    path = path_offsets(offset)
    assert path[0] == (0, 0) and path[-1] == (dy, dx)
    assert len(path) == max(abs(dy), abs(dx)) + 1
    for (y0, x0), (y1, x1) in zip(path, path[1:]):
        assert max(abs(y1 - y0), abs(x1 - x0)) == 1          # 8-connected steps
    for py, px in path:                                      # within half a cell of the line
        if abs(dy) >= abs(dx):
            assert abs(px - py * dx / dy) <= 0.5 + 1e-9
        else:
            assert abs(py - px * dy / dx) <= 0.5 + 1e-9
    mirror = path_offsets((dy, -dx))
    assert mirror == [(py, -px) for py, px in path]


# ----------------------------------------------------------------------------- affinity
def naive_affinity(boundary: torch.Tensor, radius: int) -> torch.Tensor:
    """Per pixel and pair, 1 - max over the path, with Python loops (autograd through max)."""
    bsz, _, h, w = boundary.shape
    hh, ww = h - (radius - 1), w - 2 * (radius - 1)
    offs = pair_offsets(radius)
    out = [[[[None] * ww for _ in range(hh)] for _ in offs] for _ in range(bsz)]
    for b in range(bsz):
        for p, off in enumerate(offs):
            for y in range(hh):
                for x in range(ww):
                    vals = [boundary[b, 0, y + ky, x + radius - 1 + kx]
                            for ky, kx in path_offsets(off)]
                    out[b][p][y][x] = 1 - torch.stack(vals).max()
    return torch.stack([torch.stack([torch.stack([torch.stack(row) for row in plane])
                                     for plane in img]) for img in out])


@pytest.mark.parametrize('radius', [2, 4])
def test_affinity_matches_naive_loop_and_gradient(radius):
    g = torch.Generator().manual_seed(radius)
    b1 = torch.rand(2, 1, 7, 9, generator=g, dtype=torch.float64).requires_grad_(True)
    b2 = b1.detach().clone().requires_grad_(True)
    fast = affinity_from_boundary(b1, radius)
    slow = naive_affinity(b2, radius)
    assert fast.shape == slow.shape == (2, len(pair_offsets(radius)), 7 - radius + 1,
                                        9 - 2 * (radius - 1))
    torch.testing.assert_close(fast, slow)
    weights = torch.rand(fast.shape, generator=g, dtype=torch.float64)
    (fast * weights).sum().backward()
    (slow * weights).sum().backward()
    assert b1.grad.abs().sum() > 0
    torch.testing.assert_close(b1.grad, b2.grad)


def test_wall_gives_zero_affinity_across_and_one_elsewhere():
    radius, h, w = 3, 6, 11
    boundary = torch.zeros(1, 1, h, w)
    boundary[..., 5] = 1.0                              # a full-height wall at column 5
    aff = affinity_from_boundary(boundary, radius)[0]
    for p, (dy, dx) in enumerate(pair_offsets(radius)):
        for y in range(aff.shape[1]):
            for x in range(aff.shape[2]):
                c0, c1 = x + radius - 1, x + radius - 1 + dx
                touches = min(c0, c1) <= 5 <= max(c0, c1)
                assert aff[p, y, x] == (0.0 if touches else 1.0)


def test_path_max_hand_computed():
    # 2x4 map, radius 2: offsets (0,1) (1,-1) (1,0) (1,1); from pixels (0,1) and (0,2).
    x = torch.tensor([[[0.0, 0.2, 0.9, 0.1],
                       [0.5, 0.0, 0.0, 0.3]]])
    assert pair_offsets(2) == [(0, 1), (1, -1), (1, 0), (1, 1)]
    expected = torch.tensor([[[[0.9, 0.9]], [[0.5, 0.9]], [[0.2, 0.9]], [[0.2, 0.9]]]])
    torch.testing.assert_close(path_max(x, 2), expected)
    torch.testing.assert_close(affinity_from_boundary(x[:, None], 2), 1 - expected)


def test_affinity_rejects_bad_shape():
    with pytest.raises(ValueError, match=r'\(B, 1, H, W\)'):
        affinity_from_boundary(torch.zeros(1, 2, 8, 8), 2)
