"""The three mIoU conventions and frequency-weighted IoU, on crafted inputs at the boundary.

Crafted image (4 classes, 9 pixels): class 2 occurs only in the prediction, class 3 in
neither. Expected values are worked out by hand from each reference's rule::

    gt   0 0 0 0 0 1 1 1 1
    pred 0 0 0 1 2 1 1 1 0

    C = [[3, 1, 1, 0],      rows (gt)  R = 5, 4, 0, 0
         [1, 3, 0, 0],      cols (pred) P = 4, 4, 1, 0
         [0, 0, 0, 0],
         [0, 0, 0, 0]]

    IoU_0 = 3 / (5 + 4 - 3) = 1/2, IoU_1 = 3 / (4 + 4 - 3) = 3/5, IoU_2 = 0 / 1 = 0, IoU_3 = n/a
    union       = (1/2 + 3/5 + 0) / 3 = 11/30
    gt_present  = (1/2 + 3/5) / 2     = 11/20
    all_classes = (1/2 + 3/5 + 0 + 0) / 4 = 11/40   (up to the 1e-10 in the denominators)
    FW IoU      = 5/9 * 1/2 + 4/9 * 3/5 = 49/90
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from wsss_core.evaluation.confusion import ConfusionMatrix, confusion_matrix
from wsss_core.evaluation.label_quality import LabelQuality
from wsss_core.evaluation.miou_conventions import (MIOU_CONVENTIONS, check_convention,
                                                   convention_metrics, frequency_weighted_iou,
                                                   mean_iou, miou_by_convention)
from wsss_core.evaluation.threshold_sweep import ThresholdSweep

GT = np.array([[0, 0, 0, 0, 0, 1, 1, 1, 1]])
PRED = np.array([[0, 0, 0, 1, 2, 1, 1, 1, 0]])
N = 4


def _psa_miou(pred, gt, n):
    """psa-style eval.py's rule, straight from the pixels: over gt < 255,
    TP / (T + P - TP + 1e-10) per class, plain mean over all n classes."""
    cal = gt < 255
    ious = []
    for i in range(n):
        t = np.sum((gt == i) & cal)
        p = np.sum((pred == i) & cal)
        tp = np.sum((gt == i) & (pred == i) & cal)
        ious.append(tp / (t + p - tp + 1e-10))
    return float(np.mean(ious))


def test_the_three_means_on_a_class_only_predicted_and_a_class_absent_from_both():
    conf = confusion_matrix(PRED, GT, N)
    assert mean_iou(conf, 'union') == pytest.approx(11 / 30, abs=1e-12)
    assert mean_iou(conf, 'gt_present') == pytest.approx(11 / 20, abs=1e-12)
    assert mean_iou(conf, 'all_classes') == pytest.approx(11 / 40, abs=1e-9)
    # all_classes is psa's formula exactly (epsilon included), float64
    assert mean_iou(conf, 'all_classes') == _psa_miou(PRED, GT, N)
    assert mean_iou(conf, 'all_classes') < 11 / 40          # the epsilon only lowers it
    assert miou_by_convention(conf) == {k: mean_iou(conf, k) for k in MIOU_CONVENTIONS}


def test_frequency_weighted_iou():
    assert frequency_weighted_iou(confusion_matrix(PRED, GT, N)) == pytest.approx(49 / 90)


def test_ignored_ground_truth_is_left_out_of_every_convention():
    gt = np.concatenate([GT, [[255, 255]]], axis=1)
    pred = np.concatenate([PRED, [[2, 3]]], axis=1)     # predictions under gt 255 do not count
    conf = confusion_matrix(pred, gt, N)
    assert miou_by_convention(conf) == miou_by_convention(confusion_matrix(PRED, GT, N))
    assert mean_iou(conf, 'all_classes') == _psa_miou(pred, gt, N)


def test_all_classes_present_in_the_ground_truth_makes_the_means_agree():
    gt = np.array([0, 1, 2, 2, 1, 0])
    pred = np.array([0, 2, 2, 1, 1, 0])
    by = miou_by_convention(confusion_matrix(pred, gt, 3))
    # IoU = 1, 1/3, 1/3 -> 5/9 under every rule
    assert by['union'] == pytest.approx(5 / 9) and by['gt_present'] == pytest.approx(5 / 9)
    assert by['all_classes'] == pytest.approx(5 / 9, abs=1e-9)


def test_empty_matrix():
    by = miou_by_convention(np.zeros((3, 3), dtype=np.int64))
    assert math.isnan(by['union']) and math.isnan(by['gt_present'])
    assert by['all_classes'] == 0.0                     # psa's formula gives 0 / 1e-10 = 0
    assert math.isnan(frequency_weighted_iou(np.zeros((3, 3))))
    assert convention_metrics(np.zeros((3, 3)))['miou'] is None       # NaN -> JSON null


def test_unknown_convention_is_refused():
    assert check_convention(None) == 'union'
    with pytest.raises(ValueError, match='unknown mIoU convention'):
        mean_iou(np.eye(2), 'nanmean')
    with pytest.raises(ValueError, match='unknown mIoU convention'):
        ConfusionMatrix(2, convention='mean')


@pytest.mark.parametrize('convention, expected', [('union', 11 / 30), ('gt_present', 11 / 20),
                                                  ('all_classes', 11 / 40)])
def test_confusion_matrix_summary_names_its_convention(convention, expected):
    cm = ConfusionMatrix(N, convention=convention).update(PRED, GT)
    assert cm.miou() == pytest.approx(expected, abs=1e-9)
    s = json.loads(json.dumps(cm.summary(['bg', 'a', 'b', 'c'])))
    assert s['miou'] == pytest.approx(expected, abs=1e-9)
    assert s['miou_convention'] == convention
    assert s['miou_by_convention']['union'] == pytest.approx(11 / 30)
    assert s['miou_by_convention']['gt_present'] == pytest.approx(11 / 20)
    assert s['miou_by_convention']['all_classes'] == pytest.approx(11 / 40, abs=1e-9)
    assert s['fw_iou'] == pytest.approx(49 / 90)
    assert s['num_classes_present'] == 3 and s['num_classes_in_gt'] == 2
    assert s['iou']['c'] is None and s['iou']['b'] == 0.0


def test_default_convention_is_union():
    cm = ConfusionMatrix(N).update(PRED, GT)
    assert cm.summary()['miou_convention'] == 'union'
    assert cm.miou() == pytest.approx(11 / 30)


def test_label_quality_mious_follow_the_convention():
    pseudo = PRED.copy()
    pseudo[0, 0] = 255                  # ignored: background for miou, left out for miou_labelled
    q = LabelQuality(N)
    q.update(pseudo, GT)
    s = q.summary(convention='gt_present')
    assert s['miou_convention'] == 'gt_present'
    # background: same matrix as PRED -> 11/20; skipped: C_00 = 2, R_0 = 4, P_0 = 3
    # -> IoU_0 = 2/5, IoU_1 = 3/5 -> 1/2
    assert s['miou'] == pytest.approx(11 / 20)
    assert s['miou_labelled'] == pytest.approx(1 / 2)
    assert q.summary()['miou'] == pytest.approx(11 / 30)


def _sweep_image():
    """GT [A A A bg bg]; CAM of A (id 0) [.9 .9 .35 0 0], of B (id 1) [0 0 0 .35 0].

    t = 0.3: pred [A A A B bg] -> IoU_bg 1/2, IoU_A 1, IoU_B 0 (B only predicted)
             union 1/2, gt_present 3/4, all_classes 1/2
    t = 0.4: pred [A A bg bg bg] -> IoU_bg 2/3, IoU_A 2/3, B absent
             union 2/3, gt_present 2/3, all_classes 4/9
    """
    gt = np.array([[1, 1, 1, 0, 0]])
    cams = np.array([[[0.9, 0.9, 0.35, 0.0, 0.0]], [[0.0, 0.0, 0.0, 0.35, 0.0]]])
    return cams, [0, 1], gt


@pytest.mark.parametrize('convention, best_t, best_miou', [
    ('union', 0.4, 2 / 3), ('gt_present', 0.3, 3 / 4), ('all_classes', 0.3, 1 / 2)])
def test_threshold_sweep_picks_the_best_threshold_under_its_convention(convention, best_t,
                                                                       best_miou):
    sweep = ThresholdSweep(3, [0.3, 0.4], convention=convention)
    sweep.update(*_sweep_image())
    best = sweep.best()
    assert best['threshold'] == pytest.approx(best_t)
    assert best['miou'] == pytest.approx(best_miou, abs=1e-9)
    assert best['miou_convention'] == convention
    s = sweep.summary()
    assert s['miou_convention'] == convention
    assert s['best']['miou_by_convention']['gt_present'] == pytest.approx(
        3 / 4 if best_t == 0.3 else 2 / 3)


# ============================================================================ callers' JSONs
def _voc_root(root, gts: dict):
    """A VOC-layout folder with only masks and a ``train`` list (images are not read)."""
    from wsss_core.io import save_label_png
    for img_id, gt in gts.items():
        save_label_png(root / 'SegmentationClass' / f'{img_id}.png', np.asarray(gt, np.uint8))
    lists = root / 'ImageSets' / 'Segmentation'
    lists.mkdir(parents=True)
    (lists / 'train.txt').write_text('\n'.join(gts) + '\n')
    return root


def _finished_stage(stage_dir, artifacts):
    from wsss_core.pipeline.manifest import write_manifest
    write_manifest(stage_dir, dict(stage=stage_dir.name, metrics={}, artifacts=artifacts))


def _evaluate(tmp_path, num_classes, **options):
    from wsss_core.pipeline.evaluate_labels import EvaluateLabels
    from wsss_core.pipeline.stage import StageContext
    data = dict(type='VOCLayoutDataset', data_root=str(tmp_path / 'voc'),
                num_classes=num_classes, img_suffix='.png')
    stage = EvaluateLabels('eval', **options)
    ctx = StageContext(cfg=dict(data=data), work_dir=tmp_path, stage_dir=tmp_path / 'eval',
                       progress=False)
    ctx.stage_dir.mkdir()
    record = stage.run(ctx)
    return stage, record, json.loads((ctx.stage_dir / 'metrics.json').read_text())


@pytest.mark.parametrize('convention, expected', [('union', 11 / 30), ('gt_present', 11 / 20),
                                                  ('all_classes', 11 / 40)])
def test_evaluate_labels_json_names_the_convention(tmp_path, convention, expected):
    from wsss_core.io import save_label_png
    _voc_root(tmp_path / 'voc', {'im1': GT})
    save_label_png(tmp_path / 'labels' / 'png' / 'im1.png', PRED.astype(np.uint8))
    _finished_stage(tmp_path / 'labels', dict(labels='png', split='train'))
    stage, record, saved = _evaluate(tmp_path, 3, labels='labels', miou_convention=convention)
    assert 'miou_convention' not in stage.options            # not in the config hash
    for metrics in (record['metrics'], saved['metrics']):
        assert metrics['miou'] == pytest.approx(expected, abs=1e-9)
        assert metrics['miou_convention'] == convention
        assert metrics['miou_by_convention']['union'] == pytest.approx(11 / 30)
        assert metrics['miou_by_convention']['gt_present'] == pytest.approx(11 / 20)
        assert metrics['miou_by_convention']['all_classes'] == pytest.approx(11 / 40, abs=1e-9)
        assert metrics['fw_iou'] == pytest.approx(49 / 90)
    assert saved['confusion']['miou_convention'] == convention
    assert saved['quality']['miou_convention'] == convention


@pytest.mark.parametrize('convention, oracle_t, oracle_miou', [
    ('union', 0.4, 2 / 3), ('gt_present', 0.3, 3 / 4)])
def test_evaluate_cams_oracle_follows_the_convention(tmp_path, convention, oracle_t,
                                                     oracle_miou):
    from wsss_core.io import save_cam
    cams, ids, gt = _sweep_image()
    _voc_root(tmp_path / 'voc', {'im1': gt})
    save_cam(tmp_path / 'cams' / 'npz' / 'im1.npz', cams, ids)
    _finished_stage(tmp_path / 'cams', dict(cams='npz', split='train'))
    _, record, saved = _evaluate(tmp_path, 2, cams='cams', threshold=0.4, sweep=[0.3, 0.4],
                                 miou_convention=convention)
    m = saved['metrics']
    assert m == record['metrics'] and m['miou_convention'] == convention
    # fixed threshold 0.4: 2/3 under union and gt_present, 4/9 under all_classes; FW 2/3
    assert m['miou'] == pytest.approx(2 / 3)
    assert m['miou_by_convention']['all_classes'] == pytest.approx(4 / 9, abs=1e-9)
    assert m['fw_iou'] == pytest.approx(2 / 3)
    assert m['oracle_threshold'] == pytest.approx(oracle_t)
    assert m['oracle_miou'] == pytest.approx(oracle_miou)
    assert saved['oracle']['miou_convention'] == convention


def test_evaluate_labels_refuses_an_unknown_convention():
    from wsss_core.pipeline.evaluate_labels import EvaluateLabels
    from wsss_core.pipeline.stage import StageError
    with pytest.raises(StageError, match='unknown mIoU convention'):
        EvaluateLabels('eval', labels='x', miou_convention='plain')


@pytest.mark.parametrize('convention, expected', [('union', 11 / 30), ('gt_present', 11 / 20),
                                                  ('all_classes', 11 / 40)])
def test_wsss_eval_prints_and_writes_the_convention(tmp_path, capsys, convention, expected):
    from wsss_core.evaluation.eval_cli import main
    from wsss_core.io import save_label_png
    save_label_png(tmp_path / 'gt' / 'im1.png', GT.astype(np.uint8))
    save_label_png(tmp_path / 'pred' / 'im1.png', PRED.astype(np.uint8))
    out_json = tmp_path / 'eval.json'
    assert main([str(tmp_path / 'pred'), str(tmp_path / 'gt'), '--num-classes', '4',
                 '--convention', convention, '--json', str(out_json)]) == 0
    out = capsys.readouterr().out
    assert f'mIoU [{convention}]: {expected:.4f}' in out
    assert (f'union {11 / 30:.4f}   gt_present {11 / 20:.4f}   all_classes {11 / 40:.4f}'
            in out)
    assert f'frequency-weighted IoU: {49 / 90:.4f}' in out
    res = json.loads(out_json.read_text())
    assert res['miou_convention'] == convention and f'mIoU [{convention}]' in res['protocol']
    m = res['metrics']
    assert m['miou'] == pytest.approx(expected, abs=1e-9) and m['miou_convention'] == convention
    assert m['miou_by_convention']['gt_present'] == pytest.approx(11 / 20)
    assert m['fw_iou'] == pytest.approx(49 / 90)


def test_wsss_eval_default_is_union_and_bad_convention_is_a_usage_error(tmp_path, capsys):
    from wsss_core.evaluation.eval_cli import evaluate_dirs, main
    from wsss_core.io import save_label_png
    save_label_png(tmp_path / 'gt' / 'im1.png', GT.astype(np.uint8))
    save_label_png(tmp_path / 'pred' / 'im1.png', PRED.astype(np.uint8))
    res = evaluate_dirs(tmp_path / 'pred', tmp_path / 'gt', 4)
    assert res['metrics']['miou_convention'] == 'union'
    assert res['metrics']['miou'] == pytest.approx(11 / 30)
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / 'pred'), str(tmp_path / 'gt'), '--num-classes', '4',
              '--convention', 'plain'])
    assert exc.value.code == 2


def test_summary_table_names_the_convention():
    from types import SimpleNamespace
    from wsss_core.pipeline.summary import summary_rows
    new = SimpleNamespace(name='test', status='ran', stage=None, manifest={'metrics': {
        'miou': 0.5, 'miou_convention': 'gt_present'}})
    old = SimpleNamespace(name='old', status='skipped', stage=None,
                          manifest={'metrics': {'miou': 0.4}})
    cams = SimpleNamespace(name='eval', status='ran', stage=None, manifest={'metrics': {
        'miou': 0.3, 'threshold': 0.25, 'oracle_miou': 0.35, 'oracle_threshold': 0.3,
        'miou_convention': 'all_classes'}})
    labels = [r[2] for r in summary_rows([new, old, cams])]
    assert labels == ['mIoU [gt_present]', 'mIoU', 'mIoU [all_classes] @ bg 0.25',
                      'mIoU [all_classes], best threshold (oracle) @ bg 0.30']


def test_report_metrics_table_lists_every_convention_under_its_name():
    from wsss_core.visualization.report import StageInfo, metrics_section
    st = StageInfo('test', 'TestSegmentor', status='complete', manifest={'metrics': {
        'miou': 0.55, 'miou_convention': 'gt_present', 'fw_iou': 0.5444,
        'miou_by_convention': {'union': 0.3667, 'gt_present': 0.55, 'all_classes': 0.275}}})
    html = metrics_section([st])
    for key, shown in (('miou_by_convention.union', '0.3667'),
                       ('miou_by_convention.gt_present', '0.5500'),
                       ('miou_by_convention.all_classes', '0.2750'),
                       ('miou_convention', 'gt_present'), ('fw_iou', '0.5444')):
        assert f'<td>{key}</td><td><span class="num">{shown}</span></td>' in html
    assert 'deeplab-pytorch' in html and 'psa-style' in html     # the rules are spelled out
