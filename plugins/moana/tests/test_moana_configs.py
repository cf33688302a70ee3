"""The shipped MoANA configs load, name registered components, and the synthetic ones run."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from wsss_core.io import read_label_png
from wsss_moana.testing import TINY_GENERATOR, registered  # noqa: F401 (fixture)


def load(name):
    from wsss_core.config import load_config
    return load_config(f'moana::{name}')


def shrink_wsss(cfg):
    """Tiny data, one epoch / a few iterations, inline CRF: the synthetic config's stages."""
    cfg.merge_from_dict({'data.generator': dict(TINY_GENERATOR), 'data.progress': False})
    for stage in cfg.stages:
        if stage['type'] == 'TrainClassifier':
            stage.update(max_epochs=1, batch_size=8, val_split=None)
        elif stage['type'] == 'TrainIRN':
            stage.update(max_epochs=1, batch_size=4, crop=48)
            stage['model']['radius'] = 4        # a 12 x 12 grid is too small for radius 10
        elif stage['type'] == 'TrainSegmentor':
            stage.update(max_iters=2, batch_size=4, crop_size=48)
        elif stage['type'] in ('RefineLabels', 'TestSegmentor'):
            stage.update(workers=0)
        if stage['type'] == 'RandomWalkLabels':
            stage.update(exp_times=3)
    return cfg


def test_synthetic_wsss_config_runs_both_arms_end_to_end(tmp_path, registered):
    from wsss_core.pipeline import Pipeline
    cfg = shrink_wsss(load('synthetic.py'))
    res = {r.name: r for r in Pipeline(cfg, tmp_path, progress=False).run()}
    for arm in ('base', 'moana'):
        labels = sorted((tmp_path / f'{arm}_rw_labels' / 'labels').glob('*.png'))
        assert len(labels) == TINY_GENERATOR['num_train']
        values = np.unique(np.concatenate([np.unique(read_label_png(p)) for p in labels]))
        assert set(values.tolist()) <= set(range(TINY_GENERATOR['num_classes'] + 1))
        for stage in (f'eval_{arm}_cams', f'eval_{arm}_ir_labels', f'eval_{arm}_rw_labels'):
            assert 0.0 <= res[stage].manifest['metrics']['miou'] <= 1.0, stage
        irn = res[f'{arm}_irn'].manifest
        assert irn['artifacts']['backbone_from'] == f'{arm}_classify'
        assert res[f'{arm}_test'].manifest['counts']['evaluated'] == TINY_GENERATOR['num_val']
    # the two arms differ only by the block: the MoANA arm's classifier has it, the other not
    import torch
    base = torch.load(tmp_path / 'base_classify' / 'model.pth', weights_only=True)
    moana = torch.load(tmp_path / 'moana_classify' / 'model.pth', weights_only=True)
    assert not any('moana' in k for k in base)
    assert set(moana) - set(base) == {k for k in moana if k.startswith('backbone.moana.')}


@pytest.mark.parametrize('name', ['synthetic.py', 'synthetic_wsol.py', 'cub_resnet50_wsol.py',
                                  'ilsvrc_resnet50_wsol.py', 'voc12_resnet50_irn.py',
                                  'voc12_resnet50_irn_fixed.py'])
def test_config_builds_its_stages(name, tmp_path, registered):
    from wsss_core.pipeline import Pipeline
    stages = Pipeline(load(name), tmp_path).stages
    assert len({s.name for s in stages}) == len(stages) > 2


def built(name: str, tmp_path) -> dict:
    """``{stage name: options as built}`` (recipes expanded), in the config's order."""
    from wsss_core.pipeline import Pipeline
    return {s.name: s.options for s in Pipeline(load(name), tmp_path, progress=False).stages}


def reference_switches(stages: dict) -> dict:
    return dict(inference_bn=stages['classify']['model']['backbone']['moana']['inference_bn'],
                cam_batch=stages['cams']['batch_size'], flip=stages['cams']['flip'],
                crf_image=stages['test']['crf']['image'])


def without_switches(stages: dict) -> dict:
    out = copy.deepcopy(stages)
    out['classify']['model']['backbone']['moana'].pop('inference_bn')
    out['test']['crf'].pop('image')
    return out


def test_voc_config_runs_the_released_behaviour_and_the_fixed_variant_the_standard(
        registered, tmp_path):
    ref = built('voc12_resnet50_irn.py', tmp_path / 'ref')
    cor = built('voc12_resnet50_irn_fixed.py', tmp_path / 'fixed')
    # the released network never leaves training mode: each image + flip pair is one batch
    # normalised with its own statistics; DeepLab's CRF on deeplab-pytorch's image
    assert reference_switches(ref) == dict(inference_bn='batch', cam_batch=1, flip=True,
                                           crf_image='mean_subtracted_bgr')
    assert reference_switches(cor) == dict(inference_bn='running', cam_batch=1, flip=True,
                                           crf_image='raw_rgb')
    assert list(cor) == list(ref)
    assert without_switches(cor) == without_switches(ref)
    # irn pads its crops in normalised space, i.e. with the mean colour (not a switch: both)
    crop = next(t for t in ref['classify']['pipeline'] if t['type'] == 'RandomPadCrop')
    assert (crop['size'], crop['img_pad_mode']) == (512, 'mean')
    assert load('voc12_resnet50_irn_fixed.py').work_dir == \
        load('voc12_resnet50_irn.py').work_dir + '_fixed'


def test_wsol_configs_use_the_reference_trainer_settings(registered):
    """SGD 0.002 for the backbone and x10 (0.02) for the block and the classifier; steps at
    5/10/15 of 20 epochs; ResNet-50 at output stride 8 with the block after layer4."""
    from mmengine.optim import build_optim_wrapper
    from wsss_core.registry import MODELS, build
    for name, classes, batch in (('cub_resnet50_wsol.py', 200, 32),
                                 ('ilsvrc_resnet50_wsol.py', 1000, 256)):
        cfg = load(name)
        train = cfg.stages[0]
        assert (train['max_epochs'], train['batch_size']) == (20, batch)
        assert train['param_scheduler'][0]['milestones'] == [5, 10, 15]
        assert cfg.data['num_classes'] == classes
        backbone = train['model']['backbone']
        assert backbone['backbone']['output_stride'] == 8 and backbone['moana']['preset'] == 'wsol'
        assert {s['mode'] for s in cfg.stages[1:]} == {'standard', 'moana-compat'}
        # the lr groups, on the same network with a tiny backbone
        tiny = dict(train['model'], num_classes=4,
                    backbone=dict(backbone, backbone=dict(type='SmallResNet',
                                                          widths=(8, 8, 8, 8))))
        wrapper = build_optim_wrapper(build(tiny, MODELS), train['optim_wrapper'])
        lrs = {}
        for group in wrapper.optimizer.param_groups:
            for p in group['params']:
                lrs[id(p)] = group['lr']
        model_params = dict(build(tiny, MODELS).named_parameters())  # names only
        net = wrapper.optimizer.param_groups
        assert sorted({g['lr'] for g in net}) == pytest.approx([0.002, 0.02])
        assert model_params  # the network has parameters in both groups
        fast = [g for g in net if g['lr'] == pytest.approx(0.02)]
        assert sum(p.numel() for g in fast for p in g['params']) == \
            sum(v.numel() for k, v in model_params.items()
                if k.startswith('backbone.moana.') or k.startswith('classifier.'))


def test_synthetic_wsol_config_runs_both_arms_when_shrunk(tmp_path, registered):
    from wsss_core.pipeline import Pipeline
    cfg = load('synthetic_wsol.py')
    cfg.merge_from_dict({'data.generator': dict(TINY_GENERATOR), 'data.progress': False})
    for stage in cfg.stages:
        if stage['type'] == 'TrainClassifier':
            stage.update(max_epochs=1, batch_size=4)
            stage['model']['backbone']['backbone'] = dict(type='SmallResNet',
                                                          widths=(8, 8, 16, 16))
    res = {r.name: r for r in Pipeline(cfg, tmp_path, progress=False).run()}
    for arm in ('base', 'moana'):
        standard = res[f'{arm}_wsol'].manifest['metrics']
        compat = res[f'{arm}_wsol_moana_compat'].manifest['metrics']
        assert 0.0 <= standard['MaxBoxAccV2'] <= 100.0 and 'MaxBoxAccV2' not in compat
        assert 0.0 <= compat['Top-1 Loc'] <= compat['GT-known Loc'] <= 100.0
