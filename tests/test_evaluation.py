"""Tests for wsss_core.evaluation: hand-computed matrices, sweep == loop, AP, mmengine metric."""
import json
import subprocess
import sys
from fractions import Fraction as F

import numpy as np
import pytest

from wsss_core.evaluation import (DEFAULT_THRESHOLDS, ConfusionMatrix, LabelQuality,
                                  ThresholdSweep, cam_to_label, confusion_matrix)
from wsss_core.evaluation.classification import (MultiLabelMAP, average_precision,
                                                 mean_average_precision)

# 3 classes on 4x4; gt has two 255s, pred has one 255 (at (3, 0), where gt = 2).
GT = np.array([[0, 0, 1, 1],
               [0, 0, 1, 1],
               [2, 2, 255, 255],
               [2, 2, 0, 0]], dtype=np.uint8)
PRED = np.array([[0, 1, 1, 1],
                 [0, 0, 1, 0],
                 [2, 1, 0, 2],
                 [255, 2, 0, 0]], dtype=np.uint8)
# C[gt, pred], counted by hand; predicted 255 read as background.
C_BG = np.array([[5, 1, 0],
                 [1, 3, 0],
                 [1, 1, 2]])
# the same with the predicted-255 pixel left out.
C_SKIP = np.array([[5, 1, 0],
                   [1, 3, 0],
                   [0, 1, 2]])


def _close(a, b):
    return abs(float(a) - float(b)) < 1e-12


# ----------------------------------------------------------------------------- confusion
def test_confusion_matrix_hand_example_background_mode():
    c = confusion_matrix(PRED, GT, 3)
    assert c.dtype == np.int64
    np.testing.assert_array_equal(c, C_BG)


def test_confusion_matrix_skip_mode():
    np.testing.assert_array_equal(confusion_matrix(PRED, GT, 3, pred_ignore='skip'), C_SKIP)


def test_iou_miou_pixel_accuracy_hand_fractions():
    cm = ConfusionMatrix(3).update(PRED, GT)
    # IoU_0 = 5 / (6 + 7 - 5), IoU_1 = 3 / (4 + 5 - 3), IoU_2 = 2 / (4 + 2 - 2)
    expected = [F(5, 8), F(1, 2), F(1, 2)]
    for got, want in zip(cm.iou(), expected):
        assert _close(got, want)
    assert _close(cm.miou(), sum(expected) / 3)          # 13/24
    assert _close(cm.pixel_accuracy(), F(10, 14))


def test_iou_skip_mode_hand_fractions():
    cm = ConfusionMatrix(3, pred_ignore='skip').update(PRED, GT)
    expected = [F(5, 7), F(1, 2), F(2, 3)]
    for got, want in zip(cm.iou(), expected):
        assert _close(got, want)
    assert _close(cm.miou(), sum(expected) / 3)


def test_absent_class_is_nan_and_left_out_of_the_mean():
    cm = ConfusionMatrix(4).update(PRED, GT)   # class 3 in neither gt nor pred
    iou = cm.iou()
    assert np.isnan(iou[3])
    assert _close(cm.miou(), F(13, 24))
    s = cm.summary(['bg', 'a', 'b', 'c'])
    assert s['iou']['c'] is None
    json.dumps(s, allow_nan=False)  # no NaN reaches JSON


def test_class_in_gt_but_never_predicted_counts_as_zero():
    gt = np.array([[0, 1], [2, 2]])
    pred = np.array([[0, 1], [1, 1]])
    cm = ConfusionMatrix(3).update(pred, gt)
    assert cm.iou()[2] == 0.0
    assert _close(cm.miou(), (1 + F(1, 3) + 0) / 3)


def test_pred_out_of_range_raises_and_bad_mode_raises():
    with pytest.raises(ValueError, match='outside'):
        confusion_matrix(np.array([[3]]), np.array([[0]]), 3)
    with pytest.raises(ValueError):
        ConfusionMatrix(3, pred_ignore='nope')
    with pytest.raises(ValueError, match='shapes'):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 3)


def test_gt_ignore_pixel_with_bad_prediction_is_skipped():
    # gt = 255 -> pixel skipped, so even an invalid prediction there does not matter
    c = confusion_matrix(np.array([[0, 7]]), np.array([[0, 255]]), 3)
    assert c.sum() == 1 and c[0, 0] == 1


def test_merge_equals_single_pass():
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(6):
        gt = rng.integers(0, 5, (9, 11)).astype(np.uint8)
        gt[rng.random(gt.shape) < 0.1] = 255
        pred = rng.integers(0, 5, (9, 11)).astype(np.uint8)
        pred[rng.random(gt.shape) < 0.1] = 255
        pairs.append((pred, gt))
    whole = ConfusionMatrix(5)
    a, b = ConfusionMatrix(5), ConfusionMatrix(5)
    for i, (p, g) in enumerate(pairs):
        whole.update(p, g)
        (a if i % 2 else b).update(p, g)
    a.merge(b)
    np.testing.assert_array_equal(a.matrix, whole.matrix)
    assert a.num_images == 6 and a.miou() == whole.miou()
    # and equal to one call on the stacked arrays
    stacked = confusion_matrix(np.stack([p for p, _ in pairs]), np.stack([g for _, g in pairs]), 5)
    np.testing.assert_array_equal(stacked, whole.matrix)


def test_summary_contents():
    s = ConfusionMatrix(3).update(PRED, GT).summary(['background', 'cat', 'dog'])
    assert _close(s['miou'], F(13, 24))
    assert _close(s['iou']['cat'], F(1, 2))
    assert s['num_pixels'] == 14 and s['num_images'] == 1
    assert s['gt_pixels'] == {'background': 6, 'cat': 4, 'dog': 4}
    assert s['pred_pixels'] == {'background': 7, 'cat': 5, 'dog': 2}
    json.dumps(s, allow_nan=False)
    empty = ConfusionMatrix(3).summary()
    assert empty['miou'] is None and empty['pixel_accuracy'] is None
    json.dumps(empty, allow_nan=False)


# ----------------------------------------------------------------------------- cam labels
def test_cam_to_label_rule_and_ties():
    cams = np.array([[[0.10, 0.25, 0.90]],
                     [[0.05, 0.30, 0.90]]], dtype=np.float32)   # K=2, H=1, W=3
    lab = cam_to_label(cams, [4, 11], threshold=0.25)
    # px0: max 0.10 < t -> bg; px1: max 0.30 (class 11) > t; px2: tie between CAMs -> first (4)
    np.testing.assert_array_equal(lab, [[0, 12, 5]])
    assert lab.dtype == np.uint8
    # tie with the background plane -> background (plane comes first in the argmax)
    assert cam_to_label(np.full((1, 1, 1), 0.25, np.float32), [0], 0.25)[0, 0] == 0
    # no classes -> all background
    assert cam_to_label(np.zeros((0, 2, 2)), [], 0.0).tolist() == [[0, 0], [0, 0]]


def test_cam_to_label_resizes_to_shape():
    cams = np.zeros((1, 4, 4), np.float32)
    cams[0, :, 2:] = 1.0
    lab = cam_to_label(cams, [2], 0.5, shape=(8, 8))
    assert lab.shape == (8, 8)
    assert (lab[:, :3] == 0).all() and (lab[:, 5:] == 3).all()


# ----------------------------------------------------------------------------- sweep
def _random_image(rng, n_fg, h=13, w=17, quantise=False):
    k = int(rng.integers(0, 4))
    ids = np.sort(rng.choice(n_fg, size=k, replace=False))
    cams = rng.random((k, h, w)).astype(np.float32) * 0.8
    if quantise:   # put many values exactly on grid thresholds
        cams = (np.round(cams * 20) / 20).astype(np.float32)
    gt = rng.integers(0, n_fg + 1, (h, w)).astype(np.uint8)
    gt[rng.random((h, w)) < 0.15] = 255
    return cams, ids, gt


@pytest.mark.parametrize('quantise', [False, True])
def test_sweep_equals_explicit_loop(quantise):
    rng = np.random.default_rng(1)
    n = 6
    sweep = ThresholdSweep(n)
    loop = {t: np.zeros((n, n), np.int64) for t in sweep.thresholds}
    for _ in range(8):
        cams, ids, gt = _random_image(rng, n - 1, quantise=quantise)
        sweep.update(cams, ids, gt)
        for t in sweep.thresholds:
            loop[t] += confusion_matrix(cam_to_label(cams, ids, t), gt, n)
    mats = sweep.matrices()
    assert mats.shape == (len(sweep.thresholds), n, n)
    for i, t in enumerate(sweep.thresholds):
        np.testing.assert_array_equal(mats[i], loop[t], err_msg=f't={t}')
    curve = sweep.curve()
    for (t, m), t2 in zip(curve, sweep.thresholds):
        ref = ConfusionMatrix(n).add_matrix(loop[t2]).miou()
        assert t == t2 and (m == ref or (np.isnan(m) and np.isnan(ref)))


def test_default_grid_is_documented_grid():
    np.testing.assert_allclose(DEFAULT_THRESHOLDS, [0.05 * i for i in range(1, 13)])
    assert 0.15 in DEFAULT_THRESHOLDS.tolist()   # rounded: exact lookups work


def test_sweep_best_is_argmax_and_oracle():
    rng = np.random.default_rng(2)
    sweep = ThresholdSweep(4, thresholds=[0.5, 0.1, 0.3, 0.2])   # unsorted input is sorted
    assert sweep.thresholds.tolist() == [0.1, 0.2, 0.3, 0.5]
    for _ in range(5):
        sweep.update(*_random_image(rng, 3))
    best = sweep.best()
    curve = sweep.curve()
    assert best['oracle'] is True
    assert best['miou'] == max(m for _, m in curve)
    assert best['threshold'] == curve[int(np.argmax([m for _, m in curve]))][0]
    s = sweep.summary(['bg', 'a', 'b', 'c'])
    assert s['best']['oracle'] is True and len(s['curve']) == 4
    json.dumps(s, allow_nan=False)


def test_sweep_best_on_a_designed_example():
    # object (class 0 -> label 1) has CAM 0.5, background CAM 0.25 (both exact in binary):
    # t in [0.25, 0.5) is perfect (a tie with the background plane goes to background)
    cams = np.full((1, 4, 4), 0.25, np.float32)
    cams[0, :2] = 0.5
    gt = np.zeros((4, 4), np.uint8)
    gt[:2] = 1
    sweep = ThresholdSweep(2, thresholds=[0.125, 0.25, 0.375, 0.5, 0.625])
    sweep.update(cams, [0], gt)
    mious = dict(sweep.curve())
    assert mious[0.25] == 1.0 and mious[0.375] == 1.0
    assert mious[0.125] == 0.25            # everything foreground: IoU_bg 0, IoU_fg 1/2
    assert mious[0.5] == 0.25              # everything background: IoU_bg 1/2, IoU_fg 0
    assert sweep.best() == {'threshold': 0.25, 'miou': 1.0, 'miou_convention': 'union',
                            'oracle': True}
    np.testing.assert_array_equal(sweep.confusion_at(0.125).matrix, [[0, 8], [0, 8]])
    with pytest.raises(KeyError):
        sweep.confusion_at(0.3)


def test_sweep_merge_and_errors():
    rng = np.random.default_rng(3)
    a, b, whole = ThresholdSweep(4), ThresholdSweep(4), ThresholdSweep(4)
    for i in range(4):
        img = _random_image(rng, 3)
        whole.update(*img)
        (a if i % 2 else b).update(*img)
    np.testing.assert_array_equal(a.merge(b).matrices(), whole.matrices())
    with pytest.raises(ValueError):
        whole.update(np.zeros((1, 3, 3)), [3], np.zeros((3, 3)))   # class id 3 -> label 4 >= n
    with pytest.raises(ValueError):
        whole.update(np.zeros((1, 3, 3)), [0], np.zeros((4, 4)))   # size mismatch


# ----------------------------------------------------------------------------- label quality
def test_label_quality_hand_example():
    lq = LabelQuality(3)
    lq.update(PRED, GT)
    s = lq.summary(['bg', 'cat', 'dog'])
    # 14 valid pixels, 13 labelled, 10 correct
    assert s['counts'] == {'valid': 14, 'labelled': 13, 'correct': 10}
    assert _close(s['labelled_fraction'], F(13, 14))
    assert _close(s['precision'], F(10, 13))
    assert _close(s['recall'], F(10, 14))
    assert _close(s['recall'], s['precision'] * s['labelled_fraction'])
    # per class: precision = diag / predicted count, recall = diag / gt count (ignored = missed)
    assert _close(s['per_class']['bg']['precision'], F(5, 6))
    assert _close(s['per_class']['cat']['precision'], F(3, 5))
    assert _close(s['per_class']['dog']['precision'], 1)
    assert _close(s['per_class']['bg']['recall'], F(5, 6))
    assert _close(s['per_class']['cat']['recall'], F(3, 4))
    assert _close(s['per_class']['dog']['recall'], F(1, 2))
    assert _close(s['mean_fg_precision'], F(4, 5))
    assert _close(s['mean_fg_recall'], F(5, 8))
    assert _close(s['miou'], F(13, 24))
    assert _close(s['miou_labelled'], (F(5, 7) + F(1, 2) + F(2, 3)) / 3)
    json.dumps(s, allow_nan=False)


def test_label_quality_all_ignored_and_bad_values():
    lq = LabelQuality(3)
    lq.update(np.full((2, 2), 255, np.uint8), np.zeros((2, 2), np.uint8))
    s = lq.summary()
    assert s['labelled_fraction'] == 0.0 and s['precision'] is None and s['recall'] == 0.0
    json.dumps(s, allow_nan=False)
    with pytest.raises(ValueError):
        lq.update(np.full((2, 2), 3, np.uint8), np.zeros((2, 2), np.uint8))



def test_label_quality_error_split_counts_each_kind_of_mistake_once():
    # gt: 4 background, 6 object pixels (4 cat, 2 dog); each object pixel's label is one of
    # right, background, ignored or the other class; the background spills once onto a class
    gt = np.array([[0, 0, 0, 0, 1],
                   [1, 1, 1, 2, 2]], np.uint8)
    pred = np.array([[0, 0, 0, 2, 1],
                     [0, 255, 2, 2, 1]], np.uint8)
    lq = LabelQuality(3)
    lq.update(pred, gt)
    split = lq.error_split()
    assert _close(split['object_to_background'], F(1, 6))
    assert _close(split['object_unlabelled'], F(1, 6))
    assert _close(split['object_wrong_class'], F(2, 6))   # cat -> dog once, dog -> cat once
    assert _close(split['background_to_object'], F(1, 4))
    assert _close(split['object_area_ratio'], F(5, 6))    # 5 pixels labelled cat or dog
    empty = LabelQuality(3)
    empty.update(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8))
    assert np.isnan(empty.error_split()['object_to_background'])
    assert empty.error_split()['background_to_object'] == 0.0

# ----------------------------------------------------------------------------- AP / mAP
def _brute_ap(scores, targets):
    """precision at each positive, all items scoring >= it counted as ranked before it."""
    pos = [i for i in range(len(scores)) if targets[i] > 0]
    precs = []
    for i in pos:
        above = [j for j in range(len(scores)) if scores[j] >= scores[i]]
        precs.append(F(sum(targets[j] > 0 for j in above), len(above)))
    return sum(precs) / len(precs)


def test_average_precision_hand_example():
    # precisions at the positives: 1/1, 2/3, 3/5
    assert _close(average_precision([0.9, 0.8, 0.7, 0.6, 0.5], [1, 0, 1, 0, 1]), F(34, 45))
    assert average_precision([0.1, 0.9], [1, 0]) == 0.5
    assert average_precision([0.9, 0.1], [1, 0]) == 1.0
    assert np.isnan(average_precision([0.3, 0.2], [0, 0]))


def test_average_precision_ties_are_order_independent():
    # block {0.5: pos, neg}: its positive gets precision 1/3; the last positive 2/4
    assert _close(average_precision([0.9, 0.5, 0.5, 0.1], [0, 1, 0, 1]), F(5, 12))
    assert _close(average_precision([0.9, 0.5, 0.5, 0.1], [0, 0, 1, 1]), F(5, 12))


def test_average_precision_matches_brute_force():
    rng = np.random.default_rng(4)
    for _ in range(20):
        n = int(rng.integers(2, 15))
        scores = np.round(rng.random(n), 1)          # many ties
        targets = (rng.random(n) < 0.4).astype(int)
        if targets.sum() == 0:
            targets[0] = 1
        assert _close(average_precision(scores, targets), _brute_ap(scores, targets))


def test_average_precision_ignores_negative_targets():
    assert average_precision([0.9, 0.8, 0.1], [-1, 1, 0]) == 1.0


def test_mean_average_precision_skips_classes_without_positives():
    scores = np.array([[0.9, 0.65, 0.2], [0.2, 0.8, 0.3], [0.7, 0.6, 0.1]])
    targets = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 0]])
    m, ap = mean_average_precision(scores, targets)
    assert ap[0] == 1.0 and _close(ap[1], (F(1, 1) + F(2, 3)) / 2) and np.isnan(ap[2])
    assert _close(m, (1 + (F(1, 1) + F(2, 3)) / 2) / 2)


def test_multilabel_map_metric_with_fake_batches():
    torch = pytest.importorskip('torch')
    scores = torch.tensor([[0.9, 0.1, 0.2], [0.2, 0.8, 0.3], [0.7, 0.6, 0.1], [0.4, 0.3, 0.9]])
    labels = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1]], dtype=torch.float32)
    metric = MultiLabelMAP()
    # batch 1: labels inside the predictions; batch 2: labels only in data_batch
    metric.process({'labels': labels[:2]},
                   [{'scores': scores[i], 'labels': labels[i]} for i in range(2)])
    metric.process({'labels': labels[2:]}, [{'scores': scores[i]} for i in range(2, 4)])
    res = metric.evaluate(4)
    assert set(res) == {'cls/mAP', 'cls/exact_match', 'cls/label_acc'}
    ref, _ = mean_average_precision(scores.numpy(), labels.numpy())
    assert _close(res['cls/mAP'], ref)
    # at 0.5: image 2 predicts {0, 1} but has {1} -> the only miss (one wrong entry of 12)
    assert _close(res['cls/exact_match'], F(3, 4))
    assert _close(res['cls/label_acc'], F(11, 12))
    assert metric.results == []   # evaluate() clears the buffer
    with pytest.raises(KeyError):
        metric.process({}, [{'scores': scores[0]}])


def test_numpy_parts_import_without_torch():
    code = ('import sys, wsss_core.evaluation as e; e.cam_to_label; '
            'assert "torch" not in sys.modules and "mmengine" not in sys.modules, '
            'sorted(m for m in sys.modules if m.startswith(("torch", "mmengine")))[:5]')
    subprocess.run([sys.executable, '-c', code], check=True)
