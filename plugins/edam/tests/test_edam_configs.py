"""The EDAM configs load, build their stages, carry the reference settings, and the synthetic
one runs end to end when shrunk."""
from __future__ import annotations

import pytest

from wsss_edam.testing import TINY_GENERATOR, registered  # noqa: F401 (fixture)


def load(name: str):
    from wsss_core.config import load_config
    return load_config(f'edam::{name}')


def by_name(cfg) -> dict:
    return {s['name']: s for s in cfg.stages}


@pytest.mark.parametrize('name', ['synthetic.py', 'voc12_resnet38.py', 'voc12_resnet38_fixed.py'])
def test_config_builds_its_stages(name, tmp_path, registered):
    from wsss_core.pipeline import Pipeline
    kinds = [type(s).__name__ for s in Pipeline(load(name), tmp_path, progress=False).stages]
    assert 'TrainPairClassifier' in kinds and kinds[-2:] == ['TrainSegmentor', 'TestSegmentor']


def test_voc_config_is_the_reference_recipe(registered):
    s = by_name(load('voc12_resnet38.py'))
    cls = s['classify']
    assert cls.model.backbone.type == 'ResNet38' and cls.model.backbone.final_relu is False
    assert cls.passes == 25 and cls.batch_size == 4 and cls.warmup_steps == 2000
    assert cls.optim_wrapper.optimizer == dict(type='SGD', lr=1e-3, momentum=0.9,
                                               weight_decay=5e-4)
    long_side, flip, jitter, crop, _ = cls.pipeline
    assert (long_side.low, long_side.high) == (256, 512) and crop.size == 368
    assert crop.img_pad_mode == 'mean'
    assert s['masks'].scales == (1.0, 0.5, 1.5, 2.0) and s['masks'].flip
    crf, fusion = s['labels'].refiners
    assert crf == dict(type='DenseCRF', preset='edam', keep_probs=True)
    assert fusion.preset == 'crf' and fusion.scores == 'crf_probs'


def built(name: str, tmp_path) -> dict:
    """``{stage name: options as built}`` (recipes expanded), in the config's order."""
    from wsss_core.pipeline import Pipeline
    return {s.name: s.options for s in Pipeline(load(name), tmp_path, progress=False).stages}


def test_paper_config_runs_deeplab_pytorchs_crf_input_and_the_fixed_variant_the_raw_image(
        registered, tmp_path):
    ref = built('voc12_resnet38.py', tmp_path / 'ref')
    cor = built('voc12_resnet38_fixed.py', tmp_path / 'fixed')
    assert ref['test']['crf']['image'] == 'mean_subtracted_bgr'     # as EDAM's DeepLab ran
    assert cor['test']['crf']['image'] == 'raw_rgb'
    assert list(cor) == list(ref)
    assert {k: v for k, v in cor['test']['crf'].items() if k != 'image'} == \
        {k: v for k, v in ref['test']['crf'].items() if k != 'image'}
    assert {k: v for k, v in cor['test'].items() if k != 'crf'} == \
        {k: v for k, v in ref['test'].items() if k != 'crf'}
    assert {k: v for k, v in cor.items() if k != 'test'} == \
        {k: v for k, v in ref.items() if k != 'test'}
    assert load('voc12_resnet38_fixed.py').work_dir == \
        load('voc12_resnet38.py').work_dir + '_fixed'


def test_synthetic_config_runs_end_to_end_when_shrunk(tmp_path, registered):
    from wsss_core.pipeline import Pipeline
    from wsss_core.config import merge_options
    small = dict(type='SmallResNet', widths=(8, 8, 16, 16))
    shrink = {'data.generator': dict(TINY_GENERATOR), 'data.progress': False,
              'stages.classify.max_epochs': 1, 'stages.classify.batch_size': 8,
              'stages.classify.val_split': None, 'stages.classify.model.backbone': small,
              'stages.edam_classify.passes': 1, 'stages.edam_classify.batch_size': 4,
              'stages.edam_classify.val_split': None, 'stages.edam_classify.warmup_steps': 2,
              'stages.edam_classify.model.backbone.width_mult': 1 / 16,
              'stages.edam_masks.scales': (1.0, 0.5)}
    for name in ('deeplab', 'edam_deeplab'):
        shrink.update({f'stages.{name}.max_iters': 2, f'stages.{name}.batch_size': 4,
                       f'stages.{name}.crop_size': 48,
                       f'stages.{name}.model': dict(_delete_=True, type='DeepLabV2',
                                                    backbone=small, rates=(1, 2, 3, 4))})
    for name in ('test', 'edam_test', 'edam_labels_crf', 'edam_labels_crf_sal'):
        shrink[f'stages.{name}.workers'] = 0
    cfg = merge_options(load('synthetic.py'), shrink)
    res = {r.name: r for r in Pipeline(cfg, tmp_path, progress=False).run()}
    for name in ('eval_edam_labels', 'eval_edam_labels_crf', 'eval_edam_labels_crf_sal'):
        assert 0.0 <= res[name].manifest['metrics']['miou'] <= 1.0
    assert res['edam_classify'].manifest['counts']['train_pairs'] > 0
    scored = res['eval_edam_classify'].manifest   # the classifier on self-pairs, val images
    assert scored['counts']['images'] == TINY_GENERATOR['num_val']
    assert 0.0 < scored['metrics']['cls/mAP'] <= 1.0
    assert res['edam_test'].manifest['counts']['evaluated'] == TINY_GENERATOR['num_val']
