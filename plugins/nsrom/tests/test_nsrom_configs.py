"""The NSROM configs load, build their stages in order, and carry the reference settings."""
from __future__ import annotations

import pytest

from wsss_nsrom.testing import registered  # noqa: F401 (fixture)


def load(spec: str):
    from wsss_core.config import load_config
    return load_config(spec)


def by_name(cfg) -> dict:
    return {s['name']: s for s in cfg.stages}


@pytest.mark.parametrize('name', ['synthetic.py', 'voc12_vgg16_deeplabv2.py',
                                  'voc12_vgg16_deeplabv2_fixed.py'])
def test_config_builds_the_two_rounds(name, tmp_path, registered):
    from wsss_core.pipeline import Pipeline
    cfg = load(f'nsrom::{name}')
    stages = Pipeline(cfg, tmp_path, progress=False).stages
    kinds = [type(s).__name__ for s in stages]
    assert kinds.count('TrainSegmentor') >= 2 and 'MaskNonSalientRegions' in kinds
    names = [s.name for s in stages]
    masked = next(s for s in stages if type(s).__name__ == 'MaskNonSalientRegions')
    second = [s for s in stages if s.options.get('labels') == masked.name
              and type(s).__name__ == 'TrainSegmentor']
    assert second and names.index(second[0].name) > names.index(masked.name)
    assert set(cfg.plugins) == {'deeplab', 'oaa', 'nsrom'}


def test_synthetic_reuses_oaa_synthetic_stages_and_recipe(registered, tmp_path):
    from wsss_core.pipeline import Pipeline
    nsrom, oaa = load('nsrom::synthetic.py'), load('oaa::synthetic.py')
    assert nsrom.stages[:len(oaa.stages)] == oaa.stages    # same stages: reused in one work dir
    built = {s.name: s.options for s in Pipeline(nsrom, tmp_path, progress=False).stages}
    same = ('model', 'max_iters', 'batch_size', 'crop_size', 'optim_wrapper')
    for name in ('nsrom_deeplab1', 'nsrom_deeplab2'):
        assert {k: built[name][k] for k in same} == {k: built['oaa_deeplab'][k] for k in same}
    assert built['nsrom_predict_train']['crf'] == built['oaa_test']['crf']


def test_voc_config_is_the_reference_recipe(registered):
    s = by_name(load('nsrom::voc12_vgg16_deeplabv2.py'))
    cls = s['classify']
    assert cls.model.type == 'NSROMClassifier' and cls.batch_size == 5 and cls.max_epochs == 15
    assert cls.optim_wrapper.get('accumulative_counts', 1) == 1
    assert cls.param_scheduler[0].milestones == [5, 10]
    assert cls.pipeline[0] == dict(type='Resize', size=(256, 256), interpolation='bilinear')
    hook, = cls.custom_hooks
    assert hook.score_filter == 0.1 and hook.filter is None and hook.quantize is True
    assert s['oacam'].model.type == 'OACAMModel' and s['oacam'].model.loss_form == 'nsrom'
    assert s['labels'].extra_cams == dict(plain_cams='cams')
    assert [r['type'] for r in s['labels'].refiners] == ['OAAProxyLabels',
                                                          'PotentialObjectMining']
    assert s['masked_labels'].dilation == 30
    # both rounds, the predictions and the test: the DeepLab recipe fragment's stages
    recipe = by_name(load('deeplab::_recipes/voc12_deeplabv2_r101.py'))
    assert 'deeplab' not in s and 'labels' not in recipe['deeplab']
    for name, labels in (('deeplab1', 'labels'), ('deeplab2', 'masked_labels')):
        assert s[name] == dict(recipe['deeplab'], name=name, labels=labels)
    assert s['predict_train_aug'] == dict(recipe['test'], name='predict_train_aug',
                                          checkpoint='deeplab1', split='train_aug')
    assert s['predict_train_aug'].crf == dict(type='DenseCRF', preset='deeplab',
                                              image='mean_subtracted_bgr')
    assert s['test'] == dict(recipe['test'], checkpoint='deeplab2')
    assert list(s).index('test') == len(s) - 1


def built(spec: str, tmp_path) -> dict:
    """``{stage name: options as built}`` (recipes expanded), in the config's order."""
    from wsss_core.pipeline import Pipeline
    return {s.name: s.options for s in Pipeline(load(spec), tmp_path, progress=False).stages}


CRF_STAGES = ('predict_train_aug', 'test')     # both DeepLab CRF passes


def reference_switches(stages: dict) -> dict:
    """The values of the switches that reproduce the reference."""
    return dict(hook_quantize=stages['classify']['custom_hooks'][0]['quantize'],
                crf_images=[stages[name]['crf']['image'] for name in CRF_STAGES])


def without_switches(stages: dict) -> dict:
    out = {name: dict(options) for name, options in stages.items()}
    out['classify']['custom_hooks'] = [{k: v for k, v in h.items() if k != 'quantize'}
                                       for h in out['classify']['custom_hooks']]
    for name in CRF_STAGES:
        out[name]['crf'] = {k: v for k, v in out[name]['crf'].items() if k != 'image'}
    return out


def test_paper_config_runs_the_reference_arithmetic_and_the_fixed_variant_does_not(
        registered, tmp_path):
    paper, fixed = 'nsrom::voc12_vgg16_deeplabv2.py', 'nsrom::voc12_vgg16_deeplabv2_fixed.py'
    ref, cor = built(paper, tmp_path / 'ref'), built(fixed, tmp_path / 'fixed')
    # 8-bit maps; both CRF passes on deeplab-pytorch's mean-subtracted BGR image
    assert reference_switches(ref) == dict(hook_quantize=True,
                                           crf_images=['mean_subtracted_bgr'] * 2)
    assert reference_switches(cor) == dict(hook_quantize=False, crf_images=['raw_rgb'] * 2)
    assert list(cor) == list(ref)                       # the same stages, in the same order
    assert without_switches(cor) == without_switches(ref)
    assert load(fixed).work_dir == load(paper).work_dir + '_fixed'
