"""``wsss-eval`` against a confusion matrix worked out by hand.

Classes: 0 background, 1 'a', 2 'b', 3 'c' (``--num-classes 4``; 'c' never occurs).

image 1 (2 x 3)                      image 2 (2 x 2)
  gt   = 0 0 1     pred = 0 1 1        gt   = 0 2     pred = 255 2
         1 255 2          2 0 2               2 1            0   2

Pixels (gt, pred), gt = 255 dropped: (0,0) (0,1) (1,1) (1,2) (2,2) | (0,255) (2,2) (2,0) (1,2).
With a predicted 255 read as background::

    C = [[2, 1, 0, 0],      IoU_0 = 2 / (3 + 3 - 2) = 1/2
         [0, 1, 2, 0],      IoU_1 = 1 / (3 + 2 - 1) = 1/4
         [1, 0, 2, 0],      IoU_2 = 2 / (3 + 4 - 2) = 2/5
         [0, 0, 0, 0]]      IoU_3 = NaN (absent)  ->  mIoU = (1/2 + 1/4 + 2/5) / 3 = 23/60

pixel accuracy = 5/9; mean class accuracy = (2/3 + 1/3 + 2/3) / 3 = 5/9. With the predicted
255 skipped: C[0] = [1, 1, 0, 0], IoU_0 = 1/3, mIoU = (1/3 + 1/4 + 2/5) / 3 = 59/180, pixel
accuracy 4/8. Label quality: 9 valid pixels, 8 labelled, 4 correct -> labelled fraction 8/9,
precision 4/8, recall 4/9; class 'a': precision 1/2, recall 1/3.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from wsss_core.evaluation.eval_cli import (VOC_CLASSES, evaluate_dirs, main, read_ids,
                                           resolve_class_names)
from wsss_core.io import save_label_png

GT = {'im1': [[0, 0, 1], [1, 255, 2]], 'im2': [[0, 2], [2, 1]]}
PRED = {'im1': [[0, 1, 1], [2, 0, 2]], 'im2': [[255, 2], [0, 2]]}
EXPECTED_C = [[2, 1, 0, 0], [0, 1, 2, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
NAMES = 'a,b,c'


@pytest.fixture
def dirs(tmp_path):
    pred, gt = tmp_path / 'pred', tmp_path / 'gt'
    for img_id in GT:
        save_label_png(gt / f'{img_id}.png', np.array(GT[img_id], np.uint8))
        save_label_png(pred / f'{img_id}.png', np.array(PRED[img_id], np.uint8))
    return pred, gt


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_hand_computed_matrix_and_json(dirs, tmp_path, capsys):
    pred, gt = dirs
    out_json = tmp_path / 'out' / 'eval.json'
    code, out, _ = run(capsys, pred, gt, '--num-classes', 4, '--class-names', NAMES,
                       '--json', out_json)
    assert code == 0
    res = json.loads(out_json.read_text())
    assert res['confusion_matrix'] == EXPECTED_C
    assert res['num_images'] == 2 and res['class_names'] == ['background', 'a', 'b', 'c']
    iou = res['confusion']['iou']
    assert iou['background'] == pytest.approx(1 / 2)
    assert iou['a'] == pytest.approx(1 / 4)
    assert iou['b'] == pytest.approx(2 / 5)
    assert iou['c'] is None                                  # absent: left out of the mean
    m = res['metrics']
    assert m['miou'] == pytest.approx(23 / 60)
    assert m['pixel_accuracy'] == pytest.approx(5 / 9)
    assert m['mean_class_accuracy'] == pytest.approx(5 / 9)
    assert m['labelled_fraction'] == pytest.approx(8 / 9)
    assert m['precision'] == pytest.approx(4 / 8)
    assert m['recall'] == pytest.approx(4 / 9)
    assert res['quality']['per_class']['a'] == {'precision': pytest.approx(1 / 2),
                                                'recall': pytest.approx(1 / 3)}
    assert res['confusion']['num_classes_present'] == 3
    # the printed table
    assert 'mIoU [union]: 0.3833' in out
    assert '3 of 4 classes in ground truth or prediction, 3 in the ground truth' in out
    row_a = next(line for line in out.splitlines() if line.startswith('a '))
    assert row_a.split()[:4] == ['a', '0.2500', '0.5000', '0.3333']
    row_c = next(line for line in out.splitlines() if line.startswith('c '))
    assert row_c.split()[1] == 'n/a'
    assert 'precision 0.5000' in out and 'recall 0.4444' in out
    assert 'pixel accuracy: 0.5556' in out


def test_predicted_ignore_skipped(dirs):
    pred, gt = dirs
    res = evaluate_dirs(pred, gt, 4, pred_ignore='skip')
    assert res['confusion_matrix'][0] == [1, 1, 0, 0]
    assert res['confusion']['iou']['background'] == pytest.approx(1 / 3)
    assert res['metrics']['miou'] == pytest.approx(59 / 180)
    assert res['metrics']['pixel_accuracy'] == pytest.approx(4 / 8)
    assert res['metrics']['precision'] == pytest.approx(4 / 8)   # unaffected by the mode


def test_ids_file_selects_images(dirs, tmp_path):
    pred, gt = dirs
    ids = tmp_path / 'ids.txt'
    ids.write_text('/JPEGImages/im2.jpg /SegmentationClassAug/im2.png\n\n')
    assert read_ids(ids) == ['im2']
    res = evaluate_dirs(pred, gt, 4, ids=read_ids(ids))
    assert res['num_images'] == 1
    assert res['confusion_matrix'] == [[1, 0, 0, 0], [0, 0, 1, 0], [1, 0, 1, 0], [0, 0, 0, 0]]


def test_workers_give_the_same_counts(dirs):
    pred, gt = dirs
    assert evaluate_dirs(pred, gt, 4, workers=2)['confusion_matrix'] == EXPECTED_C


def test_missing_ground_truth_is_named(dirs, capsys):
    pred, gt = dirs
    (gt / 'im2.png').unlink()
    code, out, err = run(capsys, pred, gt, '--num-classes', 4)
    assert code == 1 and out == ''
    assert 'ground truth missing for 1 of 2' in err and str(gt / 'im2.png') in err


def test_missing_listed_prediction_is_named(dirs, tmp_path, capsys):
    pred, gt = dirs
    ids = tmp_path / 'ids.txt'
    ids.write_text('im1\nim9\n')
    code, _, err = run(capsys, pred, gt, '--num-classes', 4, '--ids', ids)
    assert code == 1 and 'prediction missing' in err and str(pred / 'im9.png') in err


@pytest.mark.parametrize('which, value, message', [
    ('pred', 7, 'outside 0..3'),          # a prediction outside the classes (255 is fine)
    ('gt', 9, 'outside the class range'),  # a wrong --num-classes, not silently skipped
])
def test_out_of_range_values_name_the_file(dirs, capsys, which, value, message):
    pred, gt = dirs
    folder = pred if which == 'pred' else gt
    arr = np.array((PRED if which == 'pred' else GT)['im1'], np.uint8)
    arr[0, 0] = value
    save_label_png(folder / 'im1.png', arr)
    code, _, err = run(capsys, pred, gt, '--num-classes', 4)
    assert code == 1 and message in err and str(folder / 'im1.png') in err


def test_size_mismatch_and_empty_folder(dirs, tmp_path, capsys):
    pred, gt = dirs
    save_label_png(pred / 'im2.png', np.zeros((3, 3), np.uint8))
    code, _, err = run(capsys, pred, gt, '--num-classes', 4)
    assert code == 1 and 'differs from the ground truth' in err and 'im2.png' in err
    empty = tmp_path / 'empty'
    empty.mkdir()
    code, _, err = run(capsys, empty, gt, '--num-classes', 4)
    assert code == 1 and 'no .png files' in err


def test_class_names():
    assert resolve_class_names(None, 21) == ['background', *VOC_CLASSES]
    assert resolve_class_names('coco', 81)[80] == 'toothbrush'
    assert resolve_class_names('x, y', 3) == ['background', 'x', 'y']
    assert resolve_class_names('bg,x,y', 3) == ['bg', 'x', 'y']
    assert resolve_class_names(None, 3) == ['background', 'class_1', 'class_2']
    with pytest.raises(ValueError, match='VOC has 21 classes'):
        resolve_class_names('VOC', 4)
    with pytest.raises(ValueError, match='need 4'):
        resolve_class_names('a,b', 4)


def test_usage_errors(dirs, capsys):
    pred, gt = dirs
    for argv in ([pred, gt], [pred, gt, '--num-classes', 1],
                 [pred, gt, '--num-classes', 4, '--class-names', 'VOC'],
                 [pred, gt, '--num-classes', 4, '--pred-ignore', 'zero']):
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in argv])
        assert exc.value.code == 2
    assert 'VOC has 21 classes' in capsys.readouterr().err
