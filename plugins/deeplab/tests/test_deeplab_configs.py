"""The shipped configs load, name registered components, and the synthetic one runs (tiny)."""
from __future__ import annotations

import pytest
from mmengine.config import Config

from wsss_deeplab.testing import TINY_GENERATOR, registered  # noqa: F401 (fixture)


def load(name: str) -> Config:
    from wsss_core.config import load_config     # resolves _base_ = ['deeplab::...'] too
    return load_config(f'deeplab::{name}')


@pytest.mark.parametrize('name', ['synthetic.py', 'voc12_deeplabv2_r101.py',
                                  'voc12_deeplabv2_r101_fixed.py',
                                  'voc12_deeplabv3plus_r101.py'])
def test_config_builds_its_stages(name, tmp_path, registered):
    from wsss_core.pipeline import Pipeline
    cfg = load(name)
    pipeline = Pipeline(cfg, tmp_path, progress=False)
    kinds = [type(s).__name__ for s in pipeline.stages]
    assert kinds[-2:] == ['TrainSegmentor', 'TestSegmentor']
    assert cfg.plugins == ['deeplab']


def built_options(name: str, tmp_path) -> list:
    """The options of the config's stages as built."""
    from wsss_core.pipeline import Pipeline
    return [s.options for s in Pipeline(load(name), tmp_path, progress=False).stages]


def test_voc_config_is_the_reference_recipe(registered, tmp_path):
    train, test = built_options('voc12_deeplabv2_r101.py', tmp_path)
    assert train['max_iters'] == 20000 and train['batch_size'] == 5 and train['iter_size'] == 2
    assert train['lr'] == 2.5e-4 and train['lr_interval'] == 10 and train['crop_size'] == 321
    assert train['train_split'] == 'train_aug' and train['labels'] is None
    model = train['model']
    assert tuple(model['rates']) == (6, 12, 18, 24) and tuple(model['msc_scales']) == (0.5, 0.75)
    assert model['input_style'] == 'caffe' and model['backbone']['depth'] == 101
    assert test['crf']['preset'] == 'deeplab' and test['flip'] is False
    assert test['split'] == 'val' and test['scales'] == [1.0]
    # deeplab-pytorch's main.py crf: the CRF sees the mean-subtracted BGR image (its quirk)
    assert test['crf']['image'] == 'mean_subtracted_bgr'


def test_fixed_variant_differs_from_the_reference_only_in_the_crf_image(registered, tmp_path):
    ref = built_options('voc12_deeplabv2_r101.py', tmp_path / 'ref')
    fixed = built_options('voc12_deeplabv2_r101_fixed.py', tmp_path / 'fixed')
    assert fixed[1]['crf']['image'] == 'raw_rgb'
    assert ref[1]['crf'] == dict(fixed[1]['crf'], image='mean_subtracted_bgr')
    assert ref[1]['crf']['preset'] == 'deeplab'
    assert fixed[0] == ref[0]
    assert {k: v for k, v in fixed[1].items() if k != 'crf'} == \
        {k: v for k, v in ref[1].items() if k != 'crf'}
    assert load('voc12_deeplabv2_r101_fixed.py').work_dir == \
        load('voc12_deeplabv2_r101.py').work_dir + '_fixed'


def test_v3plus_config_differs_from_v2_only_in_the_head(registered, tmp_path):
    # compared with the fixed v2 config: v3+ is no paper's setting, its CRF sees the raw image
    v2 = built_options('voc12_deeplabv2_r101_fixed.py', tmp_path / 'v2')
    v3 = built_options('voc12_deeplabv3plus_r101.py', tmp_path / 'v3')
    assert v3[0]['model']['type'] == 'DeepLabV3Plus'
    assert v3[0]['model']['backbone']['output_stride'] == 16
    assert tuple(v3[0]['model']['rates']) == (6, 12, 18)
    assert {k: v for k, v in v3[0].items() if k != 'model'} == \
        {k: v for k, v in v2[0].items() if k != 'model'}
    assert v3[1] == v2[1]


def test_a_config_over_a_recipe_fragment_overrides_patches_or_replaces(registered, tmp_path):
    """Over ``_base_ = [fragment]``: an option replaces the fragment's, a ``model`` without
    ``_delete_`` changes only its keys (mmengine's merge), one with ``_delete_`` replaces it;
    stages placed with ``after`` run behind the config's own."""
    from wsss_core.config import load_config
    from wsss_core.pipeline import Pipeline
    from wsss_core.pipeline.recipe_fragments import fragment_stage_options
    from wsss_core.pipeline.train_segmentor import TrainSegmentor
    voc = fragment_stage_options('deeplab::_recipes/voc12_deeplabv2_r101.py', 'deeplab')
    (tmp_path / 'patched.py').write_text(
        "_base_ = ['deeplab::_recipes/voc12_deeplabv2_r101.py']\n"
        "stages = dict(deeplab=dict(labels=None, max_iters=7,\n"
        "                           model=dict(init_checkpoint=None,\n"
        "                                      backbone=dict(stride_in_1x1=False))))\n")
    train, test = Pipeline(load_config(str(tmp_path / 'patched.py')), tmp_path / 'p',
                           progress=False).stages
    backbone = dict(voc['model']['backbone'], stride_in_1x1=False)
    expected = dict(voc, labels=None, max_iters=7,
                    model=dict(voc['model'], init_checkpoint=None, backbone=backbone))
    assert train.options == TrainSegmentor('deeplab', **expected).options
    assert train.options['model']['backbone']['depth'] == 101 and \
        train.options['crop_size'] == 321
    (tmp_path / 'replaced.py').write_text(
        "_base_ = ['deeplab::_recipes/synthetic.py']\n"
        "stages = dict(first=dict(type='EvaluateLabels', labels='x'),\n"
        "              deeplab=dict(labels=None, after='first',\n"
        "                           model=dict(_delete_=True, type='DeepLabV3Plus',\n"
        "                                      backbone=dict(type='SmallResNet'))),\n"
        "              test=dict(after='deeplab'))\n")
    cfg = load_config(str(tmp_path / 'replaced.py'))
    assert [s['name'] for s in cfg.stages] == ['first', 'deeplab', 'test']
    assert cfg.stages[1]['model'] == dict(type='DeepLabV3Plus', backbone=dict(type='SmallResNet'))


def test_the_former_recipe_option_is_refused_naming_the_fragments(registered):
    from wsss_core.config_errors import ConfigBuildError
    from wsss_core.registry import STAGES, build
    for stage in (dict(type='TrainSegmentor', name='d', recipe='synthetic'),
                  dict(type='TestSegmentor', name='t', checkpoint='d', recipe='synthetic')):
        with pytest.raises(ConfigBuildError, match=r"does not take the option 'recipe'.*"
                                                   r"deeplab::_recipes/voc12_deeplabv2_r101\.py"):
            build(stage, STAGES)


def test_synthetic_config_runs_end_to_end_when_shrunk(tmp_path, registered):
    from wsss_core.pipeline import Pipeline
    from wsss_core.config import merge_options
    cfg = merge_options(load('synthetic.py'), {
        'data.generator': dict(TINY_GENERATOR), 'data.progress': False,
        'stages.classify.max_epochs': 1, 'stages.classify.batch_size': 8,
        'stages.classify.val_split': None, 'stages.deeplab.max_iters': 2,
        'stages.deeplab.batch_size': 4, 'stages.deeplab.crop_size': 48,
        'stages.test.workers': 0})
    res = {r.name: r for r in Pipeline(cfg, tmp_path, progress=False).run()}
    assert res['test'].manifest['counts']['evaluated'] == 8
    assert 0.0 <= res['test'].manifest['metrics']['miou_crf'] <= 1.0
