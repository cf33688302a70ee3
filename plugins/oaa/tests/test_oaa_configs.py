"""The OAA configs load, build their stages, carry the reference hyper-parameters, and the
synthetic one runs end to end when shrunk."""
from __future__ import annotations

import pytest
from mmengine.config import Config

from wsss_core.config import load_config
from wsss_oaa.testing import TINY_GENERATOR, registered  # noqa: F401 (fixture)

VOC_CONFIGS = ['voc12_vgg16.py', 'voc12_vgg16_iam.py', 'voc12_vgg16_drop.py']
#: the corrected variants of the paper configs (the reference switches off)
FIXED_CONFIGS = [name.replace('.py', '_fixed.py') for name in VOC_CONFIGS]


def load(name: str) -> Config:
    return load_config(f'oaa::{name}')


def by_name(cfg) -> dict:
    return {s['name']: s for s in cfg.stages}


@pytest.mark.parametrize('name', VOC_CONFIGS + FIXED_CONFIGS + ['synthetic.py'])
def test_config_builds_its_stages_down_to_deeplab(name, tmp_path, registered):
    from wsss_core.pipeline import Pipeline
    cfg = load(name)
    kinds = [type(s).__name__ for s in Pipeline(cfg, tmp_path, progress=False).stages]
    assert kinds[0] == 'TrainClassifier'
    assert kinds.index('TestSegmentor') == kinds.index('TrainSegmentor') + 1
    assert 'OAAProxyLabels' in str(cfg.stages)
    assert set(cfg.plugins) == {'deeplab', 'oaa'}


def test_voc_classifier_is_the_reference_recipe(registered):
    stages = by_name(load('voc12_vgg16.py'))
    cls = stages['classify']
    assert cls.model.type == 'OAAClassifier' and cls.model.backbone.type == 'VGG16OAA'
    assert cls.max_epochs == 15 and cls.batch_size == 1
    opt = cls.optim_wrapper
    assert opt.accumulative_counts == 5
    assert opt.optimizer == dict(type='SGD', lr=1e-3, momentum=0.9, nesterov=True,
                                 weight_decay=5e-4)
    groups = opt.paramwise_cfg
    assert (groups.backbone_lr_mult, groups.backbone_bias_lr_mult, groups.head_lr_mult,
            groups.head_bias_lr_mult, groups.head_bias_decay_mult) == (1, 2, 10, 20, 1)
    assert cls.param_scheduler[0].milestones == [10] and cls.param_scheduler[0].gamma == 0.1
    resize, jitter, _ = cls.pipeline
    assert resize.short_side == 224
    assert (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) == (.3, .3, .3, .1)
    hook, = cls.custom_hooks
    assert hook.type == 'OAAAccumulationHook' and hook.start_epoch == 1 and hook.filter == 'topk'
    assert hook.quantize is True           # the reference's 8-bit maps
    assert stages['labels'].refiners == [dict(type='OAAProxyLabels')]
    # DeepLab: the recipe fragment's two stages, trained on the proxy labels
    recipe = by_name(load_config('deeplab::_recipes/voc12_deeplabv2_r101.py'))
    deeplab = stages['deeplab']
    assert deeplab.labels == 'labels' and 'labels' not in recipe['deeplab']
    assert {k: v for k, v in deeplab.items() if k != 'labels'} == recipe['deeplab']
    assert stages['test'] == recipe['test']


def test_drop_and_iam_configs_change_only_their_part(registered):
    base, iam, drop = (load(n) for n in VOC_CONFIGS)
    b, d, i = by_name(base), by_name(drop), by_name(iam)
    assert d['classify'].custom_hooks[0].drop == dict(prob=0.5, threshold=0.6)
    assert d['classify'].custom_hooks[0].quantize is True   # drop resized on uint8 maps
    assert {k: v for k, v in d['classify'].items() if k != 'custom_hooks'} == \
        {k: v for k, v in b['classify'].items() if k != 'custom_hooks'}
    for name in ('accumulated', 'labels', 'deeplab', 'test'):
        assert d[name] == b[name], name
    assert i['iam'].targets == 'classify' and i['iam'].model.type == 'IntegralAttentionModel'
    assert i['iam'].model.loss_weight == 5.0 and i['iam'].optim_wrapper.accumulative_counts == 5
    assert i['labels'].cams == 'iam_cams' and i['iam_cams'].scales == (1.0,)
    # the IAM sees its images as the classifier did, and infers at that size
    assert i['iam'].pipeline[:2] == b['classify'].pipeline[:2]
    assert 'attention' in i['iam'].pipeline[-1]['keys']
    assert i['iam_cams'].resize == dict(short_side=224)
    assert i['deeplab'] == b['deeplab'] and len({base.work_dir, drop.work_dir, iam.work_dir}) == 3


def built(name: str, tmp_path) -> dict:
    """``{stage name: options as built}`` (recipes expanded), in the config's order."""
    from wsss_core.pipeline import Pipeline
    return {s.name: s.options for s in Pipeline(load(name), tmp_path, progress=False).stages}


def reference_switches(stages: dict) -> dict:
    """The values of the switches that reproduce the reference, per stage."""
    hook = stages['classify']['custom_hooks'][0]
    return dict(hook_quantize=hook['quantize'], export_quantize=stages['accumulated']['quantize'],
                crf_image=stages['test']['crf']['image'])


def without_switches(stages: dict) -> dict:
    out = {name: dict(options) for name, options in stages.items()}
    out['classify']['custom_hooks'] = [{k: v for k, v in h.items() if k != 'quantize'}
                                       for h in out['classify']['custom_hooks']]
    out['accumulated'].pop('quantize')
    out['test']['crf'] = {k: v for k, v in out['test']['crf'].items() if k != 'image'}
    return out


@pytest.mark.parametrize('paper, fixed', list(zip(VOC_CONFIGS, FIXED_CONFIGS)))
def test_paper_configs_run_the_reference_arithmetic_and_fixed_variants_do_not(
        paper, fixed, tmp_path, registered):
    ref, cor = built(paper, tmp_path / 'ref'), built(fixed, tmp_path / 'fixed')
    # 8-bit maps as the reference's PNGs; DeepLab's CRF on deeplab-pytorch's image
    assert reference_switches(ref) == dict(hook_quantize=True, export_quantize=True,
                                           crf_image='mean_subtracted_bgr')
    assert reference_switches(cor) == dict(hook_quantize=False, export_quantize=False,
                                           crf_image='raw_rgb')
    assert list(cor) == list(ref)                       # the same stages, in the same order
    assert without_switches(cor) == without_switches(ref)
    assert load(fixed).work_dir == load(paper).work_dir + '_fixed'


def test_synthetic_config_runs_end_to_end_when_shrunk(tmp_path, registered):
    from wsss_core.pipeline import Pipeline
    from wsss_oaa.tiny_configs import shrink_synthetic
    cfg = shrink_synthetic(load('synthetic.py'))
    res = {r.name: r for r in Pipeline(cfg, tmp_path, progress=False).run()}
    for name in ('eval_oaa_cams', 'eval_oaa_accumulated', 'eval_oaa_iam_cams'):
        assert 0.0 <= res[name].manifest['metrics']['miou'] <= 1.0
    assert res['eval_oaa_labels'].manifest['metrics']['miou'] >= 0.0
    assert res['oaa_test'].manifest['counts']['evaluated'] == 8
    assert res['oaa_deeplab'].manifest['artifacts']['trained_on'] == 'oaa_labels'
