"""IRN pair labels and losses, checked against naive per-pair loops."""
from __future__ import annotations

import math

import torch

from wsss_core.irn.affinity_labels import pair_labels, stride4_labels
from wsss_core.irn.losses import (EPS, affinity_loss_terms, displacement_loss_terms,
                                  irn_loss_terms)
from wsss_core.irn.pairs import pair_offsets

RADIUS = 3


def naive_offsets(radius):
    """The half-plane disc, enumerated independently of the code under test."""
    return [(dy, dx) for dy in range(radius) for dx in range(-radius + 1, radius)
            if (dy > 0 or dx > 0) and dy * dy + dx * dx < radius * radius]


def naive_pairs(label, radius):
    """Every (from, to, offset) pair of the interior region: from-pixels in rows 0..H-r and
    columns r-1..W-r, to = from + offset."""
    h, w = label.shape
    out = []
    for y in range(0, h - radius + 1):
        for x in range(radius - 1, w - radius + 1):
            for dy, dx in naive_offsets(radius):
                out.append(((y, x), (y + dy, x + dx), (dy, dx)))
    return out


def kind(a, b):
    if a == 255 or b == 255:
        return None
    if a != b:
        return 'neg'
    return 'bg_pos' if a == 0 else 'fg_pos'


def two_region_label():
    """An 8 x 12 grid: background left, class 2 right, an ignore column between them and an
    ignore corner."""
    label = torch.zeros(8, 12, dtype=torch.long)
    label[:, 7:] = 2
    label[:, 6] = 255
    label[6:, :2] = 255
    return label


def test_offsets_match_the_independent_enumeration():
    assert sorted(pair_offsets(RADIUS)) == sorted(naive_offsets(RADIUS))


def test_pair_label_counts_match_a_naive_loop():
    label = two_region_label()
    pairs = pair_labels(label[None], RADIUS)
    expected = dict(bg_pos=0, fg_pos=0, neg=0)
    for (y0, x0), (y1, x1), _ in naive_pairs(label, RADIUS):
        k = kind(int(label[y0, x0]), int(label[y1, x1]))
        if k:
            expected[k] += 1
    assert pairs.counts() == expected
    assert all(v > 0 for v in expected.values())
    assert not (pairs.bg_pos & pairs.fg_pos).any() and not (pairs.fg_pos & pairs.neg).any()


def test_stride4_labels_sample_the_cell_centres():
    label = torch.arange(13 * 18).view(1, 13, 18)
    small = stride4_labels(label)
    assert small.shape == (1, 4, 5)                       # ceil(13/4), ceil(18/4)
    assert small[0, 3, 4] == label[0, 12, 16] and small[0, 1, 2] == label[0, 4, 8]


def test_losses_equal_naive_masked_means():
    label = two_region_label()
    h, w = label.shape
    torch.manual_seed(0)
    boundary_free_aff = torch.rand(1, len(pair_offsets(RADIUS)), h - RADIUS + 1,
                                   w - 2 * (RADIUS - 1))
    disp = torch.randn(1, 2, h, w)
    pairs = pair_labels(label[None], RADIUS)
    aff = affinity_loss_terms(boundary_free_aff, pairs)
    dp = displacement_loss_terms(disp, pairs, RADIUS)
    offsets = pair_offsets(RADIUS)
    sums = dict(bg_pos=[], fg_pos=[], neg=[], dp_fg=[], dp_bg=[])
    for (y0, x0), (y1, x1), o in naive_pairs(label, RADIUS):
        k = kind(int(label[y0, x0]), int(label[y1, x1]))
        if k is None:
            continue
        a = float(boundary_free_aff[0, offsets.index(o), y0, x0 - RADIUS + 1])
        d = disp[0, :, y0, x0] - disp[0, :, y1, x1]          # D(x_i) - D(x_j)
        if k == 'neg':
            sums['neg'].append(-math.log(1 + EPS - a))
            continue
        sums[k].append(-math.log(a + EPS))
        if k == 'fg_pos':
            sums['dp_fg'].append(float((d - torch.tensor(o, dtype=d.dtype)).abs().mean()))
        else:
            sums['dp_bg'].append(float(d.abs().mean()))
    mean = {k: sum(v) / len(v) for k, v in sums.items()}
    for k in ('bg_pos', 'fg_pos', 'neg'):
        assert math.isclose(float(aff[k]), mean[k], rel_tol=1e-5), k
    assert math.isclose(float(dp['fg']), mean['dp_fg'], rel_tol=1e-5)
    assert math.isclose(float(dp['bg']), mean['dp_bg'], rel_tol=1e-5)
    terms = irn_loss_terms(boundary_free_aff, disp, pairs, RADIUS)
    total = ((mean['bg_pos'] / 2 + mean['fg_pos'] / 2 + mean['neg']) / 2
             + (mean['dp_fg'] + mean['dp_bg']) / 2)
    assert math.isclose(float(sum(terms.values())), total, rel_tol=1e-5)


def test_terms_are_zero_without_pairs_of_their_kind():
    h, w = 8, 12
    aff = torch.rand(1, len(pair_offsets(RADIUS)), h - RADIUS + 1, w - 2 * (RADIUS - 1),
                     requires_grad=True)
    disp = torch.randn(1, 2, h, w, requires_grad=True)
    ignore = pair_labels(torch.full((1, h, w), 255), RADIUS)
    terms = irn_loss_terms(aff, disp, ignore, RADIUS)
    assert all(float(v.detach()) == 0.0 for v in terms.values())
    sum(terms.values()).backward()
    assert torch.isfinite(aff.grad).all() and float(aff.grad.abs().sum()) == 0
    background = pair_labels(torch.zeros(1, h, w, dtype=torch.long), RADIUS)
    terms = irn_loss_terms(aff.detach(), disp.detach(), background, RADIUS)
    assert float(terms['loss_fg_pos_aff']) == 0 and float(terms['loss_neg_aff']) == 0
    assert float(terms['loss_dp_fg']) == 0 and float(terms['loss_bg_pos_aff']) > 0
    assert all(math.isfinite(float(v)) for v in terms.values())
    saturated = irn_loss_terms(torch.ones_like(aff), disp.detach(),
                               pair_labels(two_region_label()[None], RADIUS), RADIUS)
    assert all(math.isfinite(float(v)) for v in saturated.values())   # a = 1 on negatives


def test_loss_decreases_when_training_the_branches_on_one_sample():
    from wsss_core.irn.model import InterPixelRelationNet
    torch.manual_seed(0)
    model = InterPixelRelationNet(
        backbone=dict(type='TimmFeatureLevels', model_name='resnet18', channels=(8, 16, 32, 64)),
        radius=RADIUS, boundary_widths=(4,) * 5, displacement_widths=(4, 4, 8, 8, 8),
        displacement_fuse_width=8).train()
    img = torch.randn(1, 3, 48, 48)
    img[..., 24:] += 2.0                                  # the two regions look different
    label = torch.zeros(1, 48, 48, dtype=torch.long)
    label[..., 24:] = 1
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.2, momentum=0.9)
    losses = []
    for _ in range(15):
        loss = sum(model(img, ir_label=label, mode='loss').values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0], losses
