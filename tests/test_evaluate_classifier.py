"""EvaluateClassifier: a finished classifier scored again (wsss_core.pipeline.evaluate_classifier)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from mmengine.config import Config

from wsss_core.models.cam_classifier import CAMClassifier
from wsss_core.pipeline import Pipeline, StageError
from wsss_core.registry import MODELS
from wsss_core.testing import tiny_classify_stage


@MODELS.register_module(name='_TestNegatableClassifier')
class _NegatableClassifier(CAMClassifier):
    """A CAMClassifier with one more way to score: ``negate`` reverses every ranking."""

    negate = False

    def forward(self, img, labels=None, mode='tensor', **kwargs):
        out = super().forward(img, labels, mode=mode, **kwargs)
        if mode == 'predict' and self.negate:
            out = [dict(o, scores=1 - o['scores']) for o in out]
        return out


def run(stages, data_cfg, work_dir):
    cfg = Config(dict(seed=0, data=data_cfg, stages=stages))
    return {r.name: r for r in Pipeline(cfg, work_dir, progress=False).run()}


def _classify(**model):
    stage = tiny_classify_stage(val_split='val')
    stage['model'].update(model)
    return stage


def test_the_val_map_of_the_training_stage_is_reproduced_with_per_class_ap(tmp_path,
                                                                           tiny_data_cfg):
    res = run([_classify(),
               dict(type='EvaluateClassifier', name='eval_classify', source='classify')],
              tiny_data_cfg, tmp_path)
    trained, scored = res['classify'].manifest['metrics'], res['eval_classify'].manifest['metrics']
    assert scored['cls/mAP'] == pytest.approx(trained['cls/mAP'], abs=1e-6)
    assert scored['cls/exact_match'] == pytest.approx(trained['cls/exact_match'], abs=1e-6)
    detail = json.loads((tmp_path / 'eval_classify' / 'metrics.json').read_text())
    assert len(detail['per_class_ap']) == 3
    assert np.mean(list(detail['per_class_ap'].values())) == pytest.approx(scored['cls/mAP'])
    assert res['eval_classify'].manifest['counts'] == dict(images=8)


def test_predict_options_change_how_the_same_weights_score(tmp_path, tiny_data_cfg):
    stages = [_classify(type='_TestNegatableClassifier'),
              dict(type='EvaluateClassifier', name='plain', source='classify', split='train'),
              dict(type='EvaluateClassifier', name='negated', source='classify', split='train',
                   predict_options=dict(negate=True))]
    res = run(stages, tiny_data_cfg, tmp_path)
    plain, negated = (json.loads((tmp_path / n / 'metrics.json').read_text())
                      for n in ('plain', 'negated'))
    assert negated['predict_options'] == dict(negate=True)
    assert negated['metrics']['cls/mAP'] != pytest.approx(plain['metrics']['cls/mAP'], abs=1e-3)
    assert res['plain'].manifest['counts'] == dict(images=16)


def test_an_option_the_model_does_not_have_is_refused(tmp_path, tiny_data_cfg):
    stages = [_classify(),
              dict(type='EvaluateClassifier', name='eval_classify', source='classify',
                   predict_options=dict(predict_scores='cma_self'))]
    with pytest.raises(StageError, match="no attribute 'predict_scores'"):
        run(stages, tiny_data_cfg, tmp_path)

