"""WSOL metrics on a small crafted set, checked against hand computations
(``docs/wsol_evaluation.md#metrics-all-in-percent``).

Thresholds tau in {0, 0.25, 0.5, 0.75} (cam_curve_interval 0.25), 10 x 10 maps, gray level
g = uint8(255 * s), a pixel is in the mask at tau when g > int(tau * max g).
"""
from __future__ import annotations

import numpy as np
import pytest

from wsss_core.wsol.evaluator import WSOLEvaluator, stack_records, unstack_records
from wsss_core.wsol.metrics import BoxAccumulator, PxAPAccumulator, tau_index
from wsss_core.presets import UnknownPresetError
from wsss_core.wsol.modes import MODES, WSOLMode, get_mode, register_wsol_mode


@pytest.fixture
def moana_compat():
    """The mode 'moana-compat', which the MoANA plugin registers (imported here as loading
    the plugin would)."""
    pytest.importorskip('wsss_moana.wsol_mode')
    return MODES['moana-compat']

TAUS = [0.0, 0.25, 0.5, 0.75]      # int(tau * 255) = 0, 63, 127, 191


def image1():
    """Nested squares: R1 rows/cols 1..8 at 0.375 (gray 95), R2 rows/cols 3..6 at 1.0.
    GT (3, 3, 6, 6).  tau 0, 0.25 -> box of R1 = (1, 1, 9, 9) (x + w = 9, clipped to 9):
    IoU = 16 / 81.  tau 0.5, 0.75 -> box of R2 = (3, 3, 7, 7): IoU = 16 / 25 = 0.64.
    One region, so largest and all contours agree."""
    s = np.zeros((10, 10), np.float32)
    s[1:9, 1:9] = 0.375
    s[3:7, 3:7] = 1.0
    return s, np.array([[3, 3, 6, 6]])


def image2():
    """Blob A rows/cols 0..4 at 1.0 (contour area 16) and the GT object B rows/cols 6..8 at
    0.625 (gray 159, contour area 4).  GT (6, 6, 8, 8).  Box of B = (6, 6, 9, 9): IoU 9 / 16.
    Largest contour = A, which misses the GT: IoU 0 at every tau.  All contours: B is found
    while it passes the threshold (159 > 0, 63, 127; not > 191): 9/16, 9/16, 9/16, 0."""
    s = np.zeros((10, 10), np.float32)
    s[0:5, 0:5] = 1.0
    s[6:9, 6:9] = 0.625
    return s, np.array([[6, 6, 8, 8]])


def image3():
    """An empty map: box (0, 0, 0, 0) at every tau, GT (5, 5, 9, 9): IoU 0."""
    return np.zeros((10, 10), np.float32), np.array([[5, 5, 9, 9]])


IMAGES = (image1, image2, image3)


def test_box_accumulator_ious_per_image_match_the_hand_values():
    largest = BoxAccumulator(TAUS, multi_contour=False)
    multi = BoxAccumulator(TAUS, multi_contour=True)
    expected_largest = [[16 / 81, 16 / 81, 0.64, 0.64], [0, 0, 0, 0], [0, 0, 0, 0]]
    expected_multi = [[16 / 81, 16 / 81, 0.64, 0.64], [9 / 16, 9 / 16, 9 / 16, 0], [0, 0, 0, 0]]
    for make, want_l, want_m in zip(IMAGES, expected_largest, expected_multi):
        s, gt = make()
        np.testing.assert_allclose(largest.update(s, gt), want_l)
        np.testing.assert_allclose(multi.update(s, gt), want_m)


def crafted_accumulators():
    largest = BoxAccumulator(TAUS, multi_contour=False)
    multi = BoxAccumulator(TAUS, multi_contour=True)
    # image 1: top-1 and top-5 correct; image 2: top-1 and top-5 correct; image 3: top-5 only
    for make, top1 in zip(IMAGES, (True, True, False)):
        s, gt = make()
        largest.update(s, gt, top1_correct=top1, top5_correct=True)
        multi.update(s, gt)
    return largest, multi


def test_maxboxacc_v2_and_gt_known_loc_by_hand():
    largest, multi = crafted_accumulators()
    # All contours, correct images per tau:
    #   delta 30: image 1 at tau 0.5, 0.75 (0.64); image 2 at tau 0, 0.25, 0.5 (0.5625)
    #             -> counts [1, 1, 2, 1] -> BoxAcc = [33.3, 33.3, 66.7, 33.3]
    #   delta 50: the same (0.64 and 0.5625 >= 0.5)
    #   delta 70: none (0.64 < 0.7)
    np.testing.assert_allclose(multi.box_acc(30), [100 / 3, 100 / 3, 200 / 3, 100 / 3])
    assert multi.max_box_acc(30) == pytest.approx(200 / 3)
    assert multi.max_box_acc(50) == pytest.approx(200 / 3)
    assert multi.max_box_acc(70) == 0.0
    assert multi.max_box_acc_v2() == pytest.approx((200 / 3 + 200 / 3 + 0) / 3)
    assert multi.best_tau(50) == 0.5
    # Largest contour: only image 1 at tau 0.5, 0.75 -> counts [0, 0, 1, 1]
    np.testing.assert_allclose(largest.box_acc(50), [0, 0, 100 / 3, 100 / 3])
    assert largest.gt_known_loc() == pytest.approx(100 / 3)
    assert largest.max_box_acc_v2() == pytest.approx((100 / 3 + 100 / 3 + 0) / 3)
    assert largest.best_tau_index(50) == 2          # the first maximum


def test_top_k_loc_and_cls_by_hand():
    largest, _ = crafted_accumulators()
    # IoU >= 0.5 (largest contour) only for image 1 at tau 0.5 and 0.75, image 1 is top-1 and
    # top-5 correct -> Top-1 Loc curve = Top-5 Loc curve = [0, 0, 1/3, 1/3]
    np.testing.assert_allclose(largest.top1_loc_curve(), [0, 0, 100 / 3, 100 / 3])
    assert largest.top1_loc() == pytest.approx(100 / 3)        # at the GT-known tau (index 2)
    assert largest.top1_loc(tau_index=0) == 0.0                # a fixed tau (MoANA style)
    assert largest.top5_loc() == (pytest.approx(100 / 3), 2)
    assert largest.top1_cls() == pytest.approx(200 / 3)        # 2 of 3
    assert largest.top5_cls() == pytest.approx(100.0)


def test_top_k_needs_class_information_for_every_image():
    acc = BoxAccumulator(TAUS, multi_contour=False)
    acc.add_ious([0.9, 0.9, 0.9, 0.9], top1_correct=True, top5_correct=True)
    acc.add_ious([0.9, 0.9, 0.9, 0.9])
    assert not acc.has_cls
    with pytest.raises(ValueError, match='1 of 2'):
        acc.top1_loc()
    with pytest.raises(ValueError, match='both'):
        acc.add_ious([0, 0, 0, 0], top1_correct=True)


# ----------------------------------------------------------------------------- PxAP
def pxap_image():
    """2 x 4 map.  Foreground scores 1.0, 0.8, 0.3; background 0.6, 0.1, 0.0;
    ignored (0.9, 0.2) left out."""
    scores = np.array([[1.0, 0.8, 0.3, 0.6], [0.1, 0.0, 0.9, 0.2]], np.float32)
    fg = np.array([[1, 1, 1, 0], [0, 0, 0, 0]], bool)
    ignore = np.array([[0, 0, 0, 0], [0, 0, 1, 1]], bool)
    return scores, fg, ignore


def test_pxap_by_hand():
    acc = PxAPAccumulator(TAUS)
    acc.update(*pxap_image())
    # bins [0,.25) [.25,.5) [.5,.75) [.75,1) [1,2) [2,3]
    # positives 1.0 -> [1,2), 0.8 -> [.75,1), 0.3 -> [.25,.5): [0, 1, 0, 1, 1, 0]
    # negatives 0.6 -> [.5,.75), 0.1 and 0.0 -> [0,.25):       [2, 0, 1, 0, 0, 0]
    assert acc.pos_hist.tolist() == [0, 1, 0, 1, 1, 0]
    assert acc.neg_hist.tolist() == [2, 0, 1, 0, 0, 0]
    # from the top bin down: TP = [0, 1, 2, 2, 3, 3], FP = [0, 0, 0, 1, 1, 3], P = 3
    # precision = [-, 1, 1, 2/3, 3/4, 1/2]; recall = [0, 1/3, 2/3, 2/3, 1, 1]
    expected = 100 * (1 * (1 / 3 - 0) + 1 * (2 / 3 - 1 / 3) + (2 / 3) * (2 / 3 - 2 / 3)
                      + (3 / 4) * (1 - 2 / 3) + (1 / 2) * (1 - 1))
    assert acc.compute() == pytest.approx(expected)          # 91.67


def test_pxap_accumulates_over_images_and_needs_positives():
    scores, fg, ignore = pxap_image()
    whole = PxAPAccumulator(TAUS)
    whole.update(scores, fg, ignore)
    split = PxAPAccumulator(TAUS)
    split.update(scores[:1], fg[:1], ignore[:1])
    split.update(scores[1:], fg[1:], ignore[1:])
    assert split.compute() == pytest.approx(whole.compute())
    empty = PxAPAccumulator(TAUS)
    empty.update(scores, np.zeros_like(fg))
    with pytest.raises(ValueError, match='foreground'):
        empty.compute()


# ----------------------------------------------------------------------------- modes, evaluator
def test_mode_presets(moana_compat):
    std, moana = MODES['standard'], moana_compat
    assert MODES.source('standard') == 'core' and MODES.source('moana-compat') == 'moana'
    assert (std.normalization, std.report_v2, std.maxboxacc_mean, std.top1_loc_tau) == \
        ('minmax', True, False, None)
    assert (moana.normalization, moana.percentile, moana.report_v2, moana.maxboxacc_mean) == \
        ('percentile', 65.0, False, True)
    assert tau_index(np.arange(0, 1, 0.01), moana.top1_loc_tau) == 4
    assert std.cam_curve_interval == moana.cam_curve_interval == 0.01
    with pytest.raises(ValueError, match='unknown'):
        get_mode('nope')
    with pytest.raises(UnknownPresetError, match=r"standard \(core\)"):
        get_mode('nope')


def test_modes_are_a_registry_plugins_fill(monkeypatch):
    """A plugin's mode is found once registered; registering the same mode again is a no-op,
    another mode under a taken name an error naming who holds it; an unknown name named by
    a discovered plugin ('moana-...') tells to load that plugin."""
    monkeypatch.setattr(MODES, '_entries', dict(MODES._entries))    # undone after the test
    mode = WSOLMode('test-only-mode', top1_loc_tau=0.5)
    assert register_wsol_mode(mode, source='tests') is mode
    register_wsol_mode(mode, source='tests')
    assert get_mode('test-only-mode') is mode and MODES.source('test-only-mode') == 'tests'
    with pytest.raises(ValueError, match="already registered by 'tests'"):
        register_wsol_mode(WSOLMode('test-only-mode'), source='other')
    with pytest.raises(TypeError, match='WSOLMode'):
        register_wsol_mode({'name': 'x'}, source='tests')
    from wsss_core.plugin_loader import discovered_plugins
    if 'moana' in {r.name for r in discovered_plugins()}:
        with pytest.raises(ValueError, match="load the plugin 'moana'"):
            get_mode('moana-unheard-of')
    with pytest.raises(ValueError, match='50'):
        get_mode('standard', iou_thresholds=(30, 70))


def crafted_records(evaluator):
    top1 = (0, 0, 1)                # image 3's top class is 1, its label 0
    scores = [np.eye(6)[c] for c in top1]
    return [evaluator.record(make()[0], make()[1], scores[i], 0)
            for i, make in enumerate(IMAGES)]


def test_evaluator_summary_standard_mode_by_hand():
    ev = WSOLEvaluator('standard', image_size=10, cam_curve_interval=0.25)
    metrics, detail = ev.summarize(crafted_records(ev))
    assert metrics['MaxBoxAccV2'] == pytest.approx((200 / 3 + 200 / 3 + 0) / 3)
    assert metrics['MaxBoxAccV2@50'] == pytest.approx(200 / 3)
    assert metrics['MaxBoxAcc'] == metrics['MaxBoxAcc@50'] == pytest.approx(100 / 3)
    assert metrics['GT-known Loc'] == pytest.approx(100 / 3)
    assert metrics['Top-1 Loc'] == pytest.approx(100 / 3)
    assert metrics['Top-1 Cls'] == pytest.approx(200 / 3)
    # top-5 of 6 classes: class 0 is out only when it is the 6th; eye rows put it 2nd -> in
    assert metrics['Top-5 Cls'] == 100.0
    assert 'PxAP' not in metrics
    assert detail['best_tau']['Top-1 Loc'] == 0.5
    assert detail['box_acc_curves']['all_contours']['30'] == pytest.approx(
        [100 / 3, 100 / 3, 200 / 3, 100 / 3])


def test_evaluator_moana_mode_reports_the_single_contour_mean(moana_compat):
    ev = WSOLEvaluator(get_mode(moana_compat, cam_curve_interval=0.25, top1_loc_tau=0.25),
                       image_size=10)
    records = crafted_records(ev)
    metrics, _ = ev.summarize(records)
    assert 'MaxBoxAccV2' not in metrics
    # single contour: MaxBoxAcc@30 = @50 = 33.3, @70 = 0 -> mean 22.2
    assert metrics['MaxBoxAcc'] == pytest.approx((100 / 3 + 100 / 3 + 0) / 3)
    assert metrics['Top-1 Loc'] == 0.0          # the fixed tau 0.25 (index 1): nothing located
    # records survive a round trip through arrays (the stage stores them in .npz chunks)
    again, _ = ev.summarize(unstack_records(stack_records(records)))
    assert again == metrics


def test_evaluator_resizes_normalises_and_rescales_boxes():
    ev = WSOLEvaluator('standard', image_size=10, cam_curve_interval=0.25)
    s, gt = image1()
    cam = 4 * s + 1                       # min-max normalisation gives s back exactly
    scoremap, rec = ev.evaluate(cam, gt * 2, ori_size=(20, 20))   # boxes from a 20 x 20 image
    np.testing.assert_array_equal(scoremap, s)
    # (6, 6, 12, 12) * 10 / 20 = (3, 3, 6, 6): the same IoUs as image 1
    np.testing.assert_allclose(rec['ious_largest'], [16 / 81, 16 / 81, 0.64, 0.64])
    big = ev.scoremap(np.kron(s, np.ones((3, 3), np.float32)))     # 30 x 30 -> 10 x 10
    assert big.shape == (10, 10) and big.max() == pytest.approx(1.0) and big.min() == 0.0


def test_wsol_metric_matches_the_hand_values_and_handles_masks():
    from wsss_core.wsol.metric import WSOLMetric
    from wsss_core.registry import METRICS
    assert METRICS.get('WSOLMetric') is WSOLMetric
    metric = WSOLMetric(image_size=10, cam_curve_interval=0.25)
    samples = []
    for i, make in enumerate(IMAGES):
        s, gt = make()
        samples.append(dict(cam=4 * s + 1, gt_boxes=gt, scores=np.eye(6)[(0, 0, 1)[i]],
                            gt_label=0))
    metric.process({}, samples[:2])
    metric.process({}, samples[2:])
    out = metric.compute_metrics(metric.results)
    assert out['MaxBoxAccV2'] == pytest.approx((200 / 3 + 200 / 3 + 0) / 3)
    assert out['GT-known Loc'] == pytest.approx(100 / 3)

    scores, fg, ignore = pxap_image()
    px = WSOLMetric(image_size=4, cam_curve_interval=0.25)
    # a 2 x 4 map on a 4 x 4 square would be resized; use a 4 x 4 square holding it twice
    sq = np.concatenate([scores, scores]).astype(np.float32)
    px.process({}, [dict(scoremap=sq, gt_boxes=[[0, 0, 3, 3]],
                         gt_mask=np.concatenate([fg, fg]),
                         ignore_mask=np.concatenate([ignore, ignore]))])
    # duplicating every pixel doubles TP and FP: precision and recall, hence PxAP, unchanged
    expected = 100 * (1 / 3 + 1 / 3 + 0 + (3 / 4) * (1 / 3) + 0)
    assert px.compute_metrics(px.results)['PxAP'] == pytest.approx(expected)
