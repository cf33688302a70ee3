"""WSOL score-map normalisation, box extraction, inclusive IoU and GT box rescaling.

Every expected value is worked out by hand in the comments
(``docs/wsol_evaluation.md#protocol-per-image``, steps 2-4).
"""
from __future__ import annotations

import numpy as np
import pytest

from wsss_core.wsol.boxes import (best_iou_per_threshold, box_iou_inclusive,
                                             boxes_from_scoremap, cam_thresholds,
                                             rescale_boxes)
from wsss_core.wsol.normalize import minmax_normalize, percentile_normalize


# ----------------------------------------------------------------------------- normalisation
def test_minmax_normalize_known_values_and_degenerate_maps():
    out = minmax_normalize(np.array([[1.0, 3.0], [5.0, 9.0]]))
    # (x - 1) / (9 - 1)
    np.testing.assert_allclose(out, [[0.0, 0.25], [0.5, 1.0]])
    assert out.dtype == np.float32
    for bad in (np.full((3, 4), 7.0), np.array([[1.0, np.nan], [0.0, 2.0]])):
        res = minmax_normalize(bad)
        assert res.shape == bad.shape and not np.isnan(res).any() and (res == 0).all()


def test_percentile_normalize_zeroes_65_percent_and_rescales_the_rest():
    cam = np.arange(100, dtype=np.float64).reshape(10, 10)
    out = percentile_normalize(cam, q=65)
    # numpy's linear percentile of 0..99 at 65 %: position 0.65 * 99 = 64.35 -> value 64.35
    p65 = 64.35
    new_max = 99 - p65
    assert (out == 0).sum() == 65                       # the values 0..64
    assert out.max() == pytest.approx(1.0)
    assert out.reshape(-1)[80] == pytest.approx((80 - p65) / new_max, rel=1e-6)
    assert out.reshape(-1)[65] == pytest.approx((65 - p65) / new_max, rel=1e-5)
    for bad in (np.full((4, 4), -2.0), np.array([[np.nan, 1.0], [2.0, 3.0]])):
        res = percentile_normalize(bad)
        assert not np.isnan(res).any() and (res == 0).all()


# ----------------------------------------------------------------------------- thresholds
def test_thresholds_are_numpy_arange_with_its_rounding():
    taus = cam_thresholds(0.01)
    assert taus.size == 100 and taus[0] == 0.0 and taus[4] == pytest.approx(0.04)
    assert taus[7] == 0.07000000000000001          # arange's value, not round(0.07, 2)
    with pytest.raises(ValueError):
        cam_thresholds(0.0)


# ----------------------------------------------------------------------------- boxes
def two_blob_map() -> np.ndarray:
    """20 x 30 map: blob A (rows 2-5, cols 3-8) at 1.0, bigger blob B (rows 10-16,
    cols 15-24) at 0.5 (gray 127), zero elsewhere."""
    s = np.zeros((20, 30), np.float32)
    s[2:6, 3:9] = 1.0
    s[10:17, 15:25] = 0.5
    return s


def test_single_vs_multi_contour_on_two_blobs():
    s = two_blob_map()
    # tau 0.3: threshold int(0.3 * 255) = 76, both blobs (255, 127) are above it.
    # OpenCV contour areas: A (corners 3..8 x 2..5) = 5 * 3 = 15; B (15..24 x 10..16) = 9 * 6 = 54
    # boundingRect gives (x, y, x + w, y + h): A -> (3, 2, 9, 6), B -> (15, 10, 25, 17)
    single = boxes_from_scoremap(s, [0.3], multi_contour=False)[0]
    multi = boxes_from_scoremap(s, [0.3], multi_contour=True)[0]
    assert single.tolist() == [[15, 10, 25, 17]]           # the larger contour: B
    assert sorted(multi.tolist()) == [[3, 2, 9, 6], [15, 10, 25, 17]]
    # tau 0.6: threshold int(0.6 * 255) = 152 > 127, so only A is left
    for multi_contour in (False, True):
        assert boxes_from_scoremap(s, [0.6], multi_contour)[0].tolist() == [[3, 2, 9, 6]]

    # against a GT box on A, single-contour IoU is 0 at tau 0.3, multi-contour finds A
    gt = np.array([[3, 2, 8, 5]])
    ious_single = best_iou_per_threshold(boxes_from_scoremap(s, [0.3], False), gt)
    ious_multi = best_iou_per_threshold(boxes_from_scoremap(s, [0.3], True), gt)
    assert ious_single[0] == 0.0
    # (3, 2, 9, 6) vs (3, 2, 8, 5): areas 7 * 5 = 35 and 6 * 4 = 24, intersection 24
    assert ious_multi[0] == pytest.approx(24 / 35)


def test_threshold_is_strictly_above_int_tau_times_max():
    s = np.zeros((8, 8), np.float32)
    s[0, 0] = 1.0            # gray 255, the maximum
    s[4:6, 4:6] = 0.5        # gray 127.5 -> 127 == int(0.5 * 255): not above, excluded
    s[7, 7] = 129 / 256      # gray 128.49 -> 128: above 127, included
    boxes = boxes_from_scoremap(s, [0.5], multi_contour=True)[0]
    # (0, 0, 1, 1) for the top-left pixel; (7, 7, 8, 8) clipped to (7, 7, 7, 7)
    assert sorted(boxes.tolist()) == [[0, 0, 1, 1], [7, 7, 7, 7]]

    # the threshold is relative to the map's own maximum: max 0.5 -> gray 127,
    # tau 0.5 -> int(63.5) = 63, so gray 64 (value 0.25 + eps) passes
    t = np.zeros((8, 8), np.float32)
    t[1, 1] = 0.5
    t[5, 5] = 65 / 256      # gray 64.7 -> 64
    assert len(boxes_from_scoremap(t, [0.5], True)[0]) == 2


def test_no_contour_gives_the_zero_box_and_boxes_are_clipped():
    empty = np.zeros((10, 12), np.float32)
    for multi_contour in (False, True):
        assert boxes_from_scoremap(empty, [0.0, 0.5], multi_contour)[1].tolist() == [[0, 0, 0, 0]]
    s = np.zeros((20, 30), np.float32)
    s[15:20, 25:30] = 1.0      # touches the right and bottom border
    # boundingRect (25, 15, 5, 5) -> (25, 15, 30, 20) -> clipped to (25, 15, 29, 19)
    assert boxes_from_scoremap(s, [0.1], False)[0].tolist() == [[25, 15, 29, 19]]


def test_scoremap_outside_unit_range_is_refused():
    with pytest.raises(ValueError, match='normalise'):
        boxes_from_scoremap(np.full((4, 4), 2.0, np.float32), [0.5], False)


# ----------------------------------------------------------------------------- IoU, rescale
def test_inclusive_iou_known_values_and_shape():
    a = np.array([[0, 0, 9, 9], [0, 0, 4, 4]])
    b = np.array([[5, 5, 14, 14], [5, 0, 9, 4], [4, 0, 8, 4]])
    iou = box_iou_inclusive(a, b)
    assert iou.shape == (2, 3)
    # (0,0,9,9) vs (5,5,14,14): areas 100 and 100, intersection 5 * 5 = 25 -> 25 / 175
    assert iou[0, 0] == pytest.approx(25 / 175)
    # (0,0,4,4) vs (5,0,9,4): adjacent, no shared pixel -> 0
    assert iou[1, 1] == 0.0
    # (0,0,4,4) vs (4,0,8,4): one shared column of 5 pixels -> 5 / (25 + 25 - 5)
    assert iou[1, 2] == pytest.approx(5 / 45)
    # (0,0,9,9) vs (4,0,8,4): contained, 25 / 100
    assert iou[0, 2] == pytest.approx(25 / 100)
    # the zero box is one pixel: against (0, 0, 3, 3) -> 1 / 16
    assert box_iou_inclusive([[0, 0, 0, 0]], [[0, 0, 3, 3]])[0, 0] == pytest.approx(1 / 16)


def test_rescale_boxes_truncates_as_x_times_new_over_old():
    out = rescale_boxes([[100, 50, 399, 299]], (500, 400), (224, 224))
    # 100*224/500 = 44.8 -> 44; 50*224/400 = 28; 399*224/500 = 178.752 -> 178;
    # 299*224/400 = 167.44 -> 167
    assert out.tolist() == [[44, 28, 178, 167]]
    # 55 * 224 / 110 = 112 exactly, while 55 * (224 / 110) = 111.999... would truncate to 111
    assert rescale_boxes([[55, 0, 110, 0]], (110, 50), (224, 224)).tolist() == [[112, 0, 224, 0]]
