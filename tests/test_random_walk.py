"""Random walk: the sparse stencil walk equals the dense T^(2^k) reference; propagation rules."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from wsss_core.irn.pairs import pair_offsets
from wsss_core.irn.random_walk import (grid_affinity, pad_boundary, propagate_cams,
                                       propagate_scores, random_walk, transition_matrix,
                                       transition_stencil)


def test_dense_transition_on_a_hand_made_three_node_graph():
    # a 1x3 grid, radius 2: only offset (0, 1) stays inside; pairs 0-1 (0.5) and 1-2 (0.8)
    assert pair_offsets(2)[0] == (0, 1)
    aff = torch.full((4, 1, 3), 0.7, dtype=torch.float64)   # 0.7: pairs leaving the grid
    aff[0, 0] = torch.tensor([0.5, 0.8, 0.9], dtype=torch.float64)
    t = transition_matrix(aff, radius=2, beta=2)
    a = np.array([[1.0, 0.25, 0.0],
                  [0.25, 1.0, 0.64],
                  [0.0, 0.64, 1.0]])
    expected = a / np.array([1.25, 1.89, 1.64])[None, :]
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(t.sum(0).numpy(), 1.0)


def test_grid_affinity_is_zero_for_pairs_leaving_the_grid():
    b = torch.zeros(4, 5)
    aff = grid_affinity(b, 3)
    assert aff.shape == (len(pair_offsets(3)), 4, 5)
    for p, (dy, dx) in enumerate(pair_offsets(3)):
        for y in range(4):
            for x in range(5):
                inside = y + dy < 4 and 0 <= x + dx < 5
                assert aff[p, y, x] == (1.0 if inside else 0.0)
    assert pad_boundary(b, 3).shape == (6, 9)


@pytest.mark.parametrize('radius,beta,exp_times', [(3, 2.0, 8), (5, 10.0, 8), (2, 1.0, 5)])
def test_sparse_walk_equals_dense_matrix_power(radius, beta, exp_times):
    g = torch.Generator().manual_seed(radius)
    h, w = 6, 7
    boundary = torch.rand(h, w, generator=g, dtype=torch.float64) * 0.6
    seeds = torch.rand(3, h, w, generator=g, dtype=torch.float64)
    t = transition_matrix(grid_affinity(boundary, radius), radius, beta)
    dense = seeds.reshape(3, -1) @ torch.linalg.matrix_power(t, 2 ** exp_times)
    sparse = random_walk(seeds, boundary, radius=radius, beta=beta, exp_times=exp_times)
    assert sparse.shape == seeds.shape and sparse.dtype == torch.float64
    torch.testing.assert_close(sparse.reshape(3, -1), dense, rtol=1e-9, atol=1e-12)


def test_stencil_holds_the_transposed_transition():
    g = torch.Generator().manual_seed(1)
    radius, h, w = 3, 4, 5
    aff = grid_affinity(torch.rand(h, w, generator=g, dtype=torch.float64), radius)
    t = transition_matrix(aff, radius, 3.0)
    stencil = transition_stencil(aff, radius, 3.0)
    side = 2 * radius - 1
    for y in range(h):
        for x in range(w):
            for u in range(-(radius - 1), radius):
                for v in range(-(radius - 1), radius):
                    weight = stencil[(u + radius - 1) * side + v + radius - 1, y, x]
                    if 0 <= y + u < h and 0 <= x + v < w:
                        assert weight == pytest.approx(t[(y + u) * w + x + v, y * w + x].item())
                    else:
                        assert weight == 0


def test_random_walk_accepts_batched_boundary_shapes_and_no_seed():
    b = torch.rand(1, 1, 5, 9)
    s = torch.rand(2, 5, 9)
    torch.testing.assert_close(random_walk(s, b, exp_times=2), random_walk(s, b[0, 0], exp_times=2))
    assert random_walk(torch.zeros(0, 5, 9), b).shape == (0, 5, 9)
    with pytest.raises(ValueError, match='grid'):
        random_walk(torch.rand(2, 4, 9), b)


def wall_grid(h=6, w=10, col=4):
    boundary = torch.zeros(h, w)
    boundary[:, col] = 1.0
    return boundary


def test_a_boundary_wall_stops_propagation():
    boundary = wall_grid()
    seeds = torch.zeros(1, 6, 10)
    seeds[0, 2, 1] = 1.0                                   # one seed left of the wall
    walked = random_walk(seeds, boundary, radius=5, beta=10, exp_times=8)
    assert (walked[0, :, 5:] == 0).all()                   # nothing crosses the wall
    assert (walked[0, :, :4] > 0).all()                    # the left side fills up


def test_propagate_cams_global_max_and_background_plane():
    boundary = wall_grid()                                 # image 24 x 37 -> grid 6 x 10
    cams = torch.zeros(2, 6, 10)
    cams[0, :, :4] = 1.0                                   # class 2 fills the left
    cams[1, :, 5:] = 0.2                                   # class 7 weakly on the right
    label = propagate_cams(cams, boundary, [2, 7], (24, 37))
    assert label.shape == (24, 37) and label.dtype == np.uint8
    # scores are divided by the GLOBAL max: class 7 peaks at 0.2 < 0.25 -> background
    assert set(np.unique(label)) <= {0, 3}
    assert (label[:, :14] == 3).all() and (label[:, 22:] == 0).all()
    label_low = propagate_cams(cams, boundary, [2, 7], (24, 37), bg_threshold=0.1)
    assert (label_low[:, 22:] == 8).all()


def test_propagate_scores_upsamples_by_four_and_crops():
    cams = torch.ones(1, 3, 4)
    scores = propagate_scores(cams, torch.zeros(3, 4), (10, 13), exp_times=3)
    assert scores.shape == (1, 10, 13)
    torch.testing.assert_close(scores, torch.ones(1, 10, 13))   # uniform stays uniform, max 1
    with pytest.raises(ValueError, match='cover'):
        propagate_scores(cams, torch.zeros(3, 4), (13, 13))


def test_propagate_without_classes_is_background():
    label = propagate_cams(torch.zeros(0, 3, 4), torch.zeros(3, 4), [], (9, 16))
    np.testing.assert_array_equal(label, np.zeros((9, 16), np.uint8))
