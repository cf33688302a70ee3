"""TestSegmentor's ``miou.json`` and metrics under the mIoU conventions.

The DeepLab recipe fragments (``deeplab::_recipes/``) report deeplab-pytorch's mean
(``gt_present``); ``miou.json`` holds all three means and the frequency-weighted IoU, and the convention stays out of the config
hash. Expected values by hand (classes 0..3, 9 pixels)::

    gt        0 0 0 0 0 1 1 1 1
    raw pred  0 0 0 1 2 1 1 1 0   IoU 1/2, 3/5, 0 (only predicted), n/a (absent)
              union 11/30, gt_present 11/20, all_classes 11/40, FW IoU 49/90
    crf pred  0 0 0 0 0 1 1 1 3   IoU 1, 3/4, n/a (absent), 0 (only predicted)
              union 7/12, gt_present 7/8, all_classes 7/16, FW IoU 5/9 + 4/9 * 3/4 = 8/9
"""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from wsss_core.evaluation.confusion import confusion_matrix
from wsss_core.pipeline.stage import StageError

from wsss_core.pipeline.recipe_fragments import fragment_stage_options
from wsss_core.pipeline.segmentor_inference import TestSegmentor

SYNTHETIC = 'deeplab::_recipes/synthetic.py'

GT = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1])
RAW = np.array([0, 0, 0, 1, 2, 1, 1, 1, 0])
CRF = np.array([0, 0, 0, 0, 0, 1, 1, 1, 3])


def _evaluated(tmp_path, stage, with_crf=True):
    results = [('im1', confusion_matrix(RAW, GT, 4),
                confusion_matrix(CRF, GT, 4) if with_crf else None)]
    dataset = SimpleNamespace(class_names=('a', 'b', 'c'), num_classes=3)
    metrics, _ = stage._evaluated(SimpleNamespace(stage_dir=tmp_path), dataset, results, 4,
                                  write=True)
    return metrics, json.loads((tmp_path / 'miou.json').read_text())


@pytest.mark.parametrize('fragment', [SYNTHETIC, 'deeplab::_recipes/voc12_deeplabv2_r101.py'])
def test_the_deeplab_recipes_report_deeplab_pytorchs_mean(tmp_path, fragment):
    stage = TestSegmentor('test', **fragment_stage_options(fragment, 'test'))
    assert stage.miou_convention == 'gt_present'
    metrics, saved = _evaluated(tmp_path, stage)
    assert saved['miou_convention'] == 'gt_present'
    raw, crf = saved['raw'], saved['crf']
    assert raw['miou'] == pytest.approx(11 / 20) and raw['miou_convention'] == 'gt_present'
    assert raw['miou_by_convention']['union'] == pytest.approx(11 / 30)
    assert raw['miou_by_convention']['gt_present'] == pytest.approx(11 / 20)
    assert raw['miou_by_convention']['all_classes'] == pytest.approx(11 / 40, abs=1e-9)
    assert raw['fw_iou'] == pytest.approx(49 / 90)
    assert crf['miou'] == pytest.approx(7 / 8)
    assert crf['miou_by_convention']['union'] == pytest.approx(7 / 12)
    assert crf['miou_by_convention']['all_classes'] == pytest.approx(7 / 16, abs=1e-9)
    assert crf['fw_iou'] == pytest.approx(8 / 9)
    # the manifest's metrics: the final (CRF) predictions, both stages' mIoU in the convention
    assert metrics['miou'] == pytest.approx(7 / 8) and metrics['miou_crf'] == pytest.approx(7 / 8)
    assert metrics['miou_raw'] == pytest.approx(11 / 20)
    assert metrics['miou_convention'] == 'gt_present'
    assert metrics['miou_by_convention'] == crf['miou_by_convention']
    assert metrics['fw_iou'] == pytest.approx(8 / 9)


def test_without_a_recipe_the_default_is_union_and_raw_is_final(tmp_path):
    stage = TestSegmentor('test', checkpoint='deeplab')
    metrics, saved = _evaluated(tmp_path, stage, with_crf=False)
    assert saved['miou_convention'] == 'union' and 'crf' not in saved
    assert metrics['miou'] == pytest.approx(11 / 30) == metrics['miou_raw']
    assert metrics['fw_iou'] == pytest.approx(49 / 90) and 'miou_crf' not in metrics


def test_the_convention_is_not_hashed_and_is_checked():
    recipe = fragment_stage_options(SYNTHETIC, 'test')
    assert recipe['miou_convention'] == 'gt_present'
    plain = TestSegmentor('test', **recipe)
    other = TestSegmentor('test', **dict(recipe, miou_convention='all_classes'))
    assert other.miou_convention == 'all_classes'
    assert plain.options == other.options and 'miou_convention' not in plain.options
    with pytest.raises(StageError, match='unknown mIoU convention'):
        TestSegmentor('test', checkpoint='deeplab', miou_convention='nanmean')
