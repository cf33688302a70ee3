"""The shipped configs load, name registered components, and the synthetic one runs (tiny)."""
from __future__ import annotations

import pytest
from mmengine.config import Config

from wsss_deeplab.testing import TINY_GENERATOR, registered  # noqa: F401 (fixture)


def load(name: str) -> Config:
    from wsss_core.config import resolve_config_path
    return Config.fromfile(str(resolve_config_path(f'deeplab::{name}')))


@pytest.mark.parametrize('name', ['synthetic.py', 'voc12_deeplabv2_r101.py',
                                  'voc12_deeplabv3plus_r101.py'])
def test_config_builds_its_stages(name, tmp_path, registered):
    from wsss_core.pipeline import Pipeline
    cfg = load(name)
    pipeline = Pipeline(cfg, tmp_path, progress=False)
    kinds = [type(s).__name__ for s in pipeline.stages]
    assert kinds[-2:] == ['TrainSegmentor', 'TestSegmentor']
    assert cfg.plugins == ['deeplab']


def test_voc_config_is_the_reference_recipe(registered):
    train, test = load('voc12_deeplabv2_r101.py').stages
    assert train.max_iters == 20000 and train.batch_size == 5 and train.iter_size == 2
    assert train.lr == 2.5e-4 and train.lr_interval == 10 and train.crop_size == 321
    assert train.model.rates == (6, 12, 18, 24) and train.model.msc_scales == (0.5, 0.75)
    assert train.model.input_style == 'caffe'
    assert test.crf.preset == 'deeplab' and test.flip is False


def test_v3plus_config_differs_from_v2_only_in_the_head(registered):
    v2, v3 = load('voc12_deeplabv2_r101.py').stages[0], load('voc12_deeplabv3plus_r101.py').stages[0]
    assert v3.model.type == 'DeepLabV3Plus' and v3.model.backbone.output_stride == 16
    assert tuple(v3.model.rates) == (6, 12, 18) and tuple(v3.model.msc_scales) == ()
    for key in ('max_iters', 'batch_size', 'iter_size', 'lr', 'crop_size', 'scales', 'power'):
        assert v3[key] == v2[key], key


def test_synthetic_config_runs_end_to_end_when_shrunk(tmp_path, registered):
    from wsss_core.pipeline import Pipeline
    cfg = load('synthetic.py')
    cfg.merge_from_dict({'data.generator': dict(TINY_GENERATOR), 'data.progress': False,
                         'stages.0.max_epochs': 1, 'stages.0.batch_size': 8,
                         'stages.0.val_split': None, 'stages.4.max_iters': 2,
                         'stages.4.batch_size': 4, 'stages.4.crop_size': 48,
                         'stages.5.workers': 0})
    res = {r.name: r for r in Pipeline(cfg, tmp_path, progress=False).run()}
    assert res['test'].manifest['counts']['evaluated'] == 8
    assert 0.0 <= res['test'].manifest['metrics']['miou_crf'] <= 1.0
