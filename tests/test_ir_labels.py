"""IRLabels (irn cam_to_ir_label): the three-way rule on crafted CAMs, and with the CRF."""
from __future__ import annotations

import numpy as np
import pytest

from wsss_core.irn.ir_labels import IRLabels, threshold_index


def sample_of(cams, class_ids, img=None):
    cams = np.asarray(cams, dtype=np.float32)
    if img is None:
        img = np.zeros(cams.shape[1:] + (3,), np.uint8)
    return dict(img_id='x', img=img, cams=cams, class_ids=np.asarray(class_ids))


def test_three_way_rule_one_class():
    # class id 4 -> label 5; thresholds fg 0.30, bg 0.05
    cams = [[[0.50, 0.31, 0.29, 0.20],
             [0.06, 0.04, 0.01, 0.00]]]
    out = IRLabels(crf=False)(sample_of(cams, [4]))['label']
    expected = np.array([[5, 5, 255, 255],
                         [255, 0, 0, 0]], np.uint8)
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.uint8


def test_three_way_rule_two_classes_takes_the_strongest():
    cams = [[[0.9, 0.1, 0.2, 0.0]],      # class 0 -> 1
            [[0.4, 0.7, 0.1, 0.02]]]     # class 6 -> 7
    out = IRLabels(crf=False)(sample_of(cams, [0, 6]))['label']
    np.testing.assert_array_equal(out, [[1, 7, 255, 0]])


def test_thresholds_are_options():
    cams = [[[0.5, 0.3, 0.15, 0.05]]]
    out = IRLabels(fg_threshold=0.4, bg_threshold=0.2, crf=False)(sample_of(cams, [2]))['label']
    np.testing.assert_array_equal(out, [[3, 255, 0, 0]])


def test_threshold_index_matches_naive_rule():
    rng = np.random.default_rng(0)
    cams = rng.random((3, 5, 6)).astype(np.float32)
    idx = threshold_index(cams, 0.4)
    for y in range(5):
        for x in range(6):
            scores = [0.4] + list(cams[:, y, x])
            assert idx[y, x] == int(np.argmax(scores))


def test_no_class_is_all_background():
    out = IRLabels()(sample_of(np.zeros((0, 3, 4)), []))['label']
    np.testing.assert_array_equal(out, np.zeros((3, 4), np.uint8))


def test_bad_thresholds_are_an_error():
    with pytest.raises(ValueError, match='bg_threshold'):
        IRLabels(fg_threshold=0.1, bg_threshold=0.2)


def test_with_crf_on_a_two_region_image(core_registered):
    pytest.importorskip('pydensecrf.densecrf')
    from wsss_core.registry import LABEL_REFINERS, build
    h, w = 20, 24
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (220, 30, 30)          # object on the left, plain background right
    img[:, w // 2:] = (30, 30, 220)
    cam = np.zeros((1, h, w), np.float32)
    cam[0, :, : w // 2] = 0.9
    cam[0, :, w // 2 - 3: w // 2] = 0.2      # weak rim: unsure before the CRF
    cam[0, 0, w - 1] = 0.5                   # one stray activation in the background
    refiner = build(dict(type='IRLabels'), LABEL_REFINERS)
    out = refiner(sample_of(cam, [11], img))['label']
    assert out.shape == (h, w) and out.dtype == np.uint8
    assert set(np.unique(out)) <= {0, 12, 255}
    assert (out[:, :4] == 12).all()            # confident object
    assert (out[:, -4:-1] == 0).all()          # confident background
    assert out[0, w - 1] == 0                  # the CRF removes the isolated activation
    assert (out[:, w // 2 - 3: w // 2] == 12).mean() > 0.5   # the rim follows the colour edge
