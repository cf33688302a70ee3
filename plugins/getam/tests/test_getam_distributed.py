"""GETAM under DDP: TrainGETAM end to end (both phases) under ``torchrun --nproc_per_node=2``
(gloo, CPU) with the options the reference trains with (SyncBatchNorm, DDP looking for unused
parameters), per-rank seeding, and where SyncBatchNorm is and is not used."""
from __future__ import annotations

import logging

import pytest

from wsss_core.pipeline.stage import StageContext, StageError
from wsss_core.testing.distributed import (epoch_ids, parameter_digest, read_rank_records,
                                           run_torchrun)
from wsss_getam.models.vit_backbone import TINY_BACKBONES
from wsss_getam.testing import TINY_GENERATOR, registered  # noqa: F401 (fixture)

DATA = dict(type='SyntheticShapes', generator=dict(TINY_GENERATOR), progress=False)
EPOCHS, BATCH = 1, 2


def tiny_model() -> dict:
    return dict(type='GETAMNet', backbone=dict(TINY_BACKBONES['vit']), features=16,
                joint=dict(start_layer=2, pamr=dict(num_iter=2, dilations=(1, 2))),
                test_sizes=(64,))


def train_stage(**options):
    from wsss_getam.stages.train_getam import TrainGETAM
    return TrainGETAM('getam', model=tiny_model(), crop=64, long_side=(56, 72), **options)


def context(tmp_path, launcher='pytorch', device='cuda') -> StageContext:
    return StageContext(cfg={}, work_dir=tmp_path, stage_dir=tmp_path / 'getam',
                        launcher=launcher, device=device, seed=0)


# ----------------------------------------------------------------------------- SyncBN decision
def test_sync_bn_converts_in_distributed_cuda_runs_only(tmp_path, registered, caplog):
    stage = train_stage(sync_bn=True)
    cuda = stage.runner_cfg(context(tmp_path))
    assert cuda['sync_bn'] == 'torch'            # mmengine converts before wrapping in DDP
    assert cuda['model_wrapper_cfg'] == dict(type='DeviceAwareDDP', broadcast_buffers=False,
                                             find_unused_parameters=True)
    with caplog.at_level(logging.WARNING, logger='wsss'):
        cpu = stage.runner_cfg(context(tmp_path, device='cpu'))
    assert 'sync_bn' not in cpu and 'model_wrapper_cfg' in cpu
    assert 'SyncBatchNorm needs a GPU' in caplog.text
    assert stage.runner_cfg(context(tmp_path, launcher='none')) == {}   # one process: nothing
    # without the option: no conversion, and the option is not hashed
    plain = train_stage()
    assert 'sync_bn' not in plain.hashed_options()
    assert 'sync_bn' not in plain.runner_cfg(context(tmp_path))
    with pytest.raises(StageError, match='sync_bn must be True or False'):
        train_stage(sync_bn='torch').runner_cfg(context(tmp_path))


def test_the_conversion_mmengine_applies_reaches_the_decoder_batchnorms(tmp_path, registered):
    import torch.nn as nn
    from mmengine.model import convert_sync_batchnorm
    def kinds(module):
        return {type(m) for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}

    net = train_stage().build_model(context(tmp_path), dict(tiny_model(), num_classes=3))
    assert kinds(net) == {nn.BatchNorm2d}
    assert kinds(convert_sync_batchnorm(net, 'torch')) == {nn.SyncBatchNorm}


def test_find_unused_parameters_is_getams_default_and_an_option(tmp_path, registered):
    from wsss_core.pipeline.train_classifier import TrainClassifier
    def wrapper(stage):
        return stage.runner_cfg(context(tmp_path))['model_wrapper_cfg']

    assert wrapper(train_stage())['find_unused_parameters'] is True
    assert wrapper(train_stage(find_unused_parameters=False))['find_unused_parameters'] is False
    classifier = TrainClassifier('c', model=dict(type='CAMClassifier',
                                                 backbone=dict(type='SmallResNet')))
    assert wrapper(classifier)['find_unused_parameters'] is False
    assert 'find_unused_parameters' not in train_stage().hashed_options()   # the default


@pytest.mark.parametrize('name', ['voc12_vitb_hybrid.py', 'voc12_vitb.py', 'voc12_deit.py',
                                  'voc12_deit_distilled.py', 'coco14_vitb_hybrid.py'])
def test_reference_configs_train_with_sync_bn(name, tmp_path, registered):
    from wsss_core.config import load_config
    from wsss_core.pipeline import Pipeline
    train = Pipeline(load_config(f'getam::{name}'), tmp_path).stages[0]
    assert type(train).__name__ == 'TrainGETAM' and train.options['sync_bn'] is True


# ----------------------------------------------------------------------------- the run
def test_train_getam_under_torchrun_both_phases_on_both_ranks(tmp_path, registered):
    from wsss_core.datasets import build_dataset
    from wsss_getam.stages.train_getam import getam_train_pipeline
    seeds = tmp_path / 'augmentation_seeds'
    pipeline = [dict(type='RecordAugmentationSeed', out_dir=str(seeds)),
                *getam_train_pipeline(crop=64, long_side=(56, 72))]
    cfg = dict(seed=0, data=dict(DATA), stages=[dict(
        type='TrainGETAM', name='getam', model=tiny_model(), max_epochs=EPOCHS,
        batch_size=BATCH, crop=64, long_side=(56, 72), pipeline=pipeline, num_workers=1,
        sync_bn=True, log_interval=100,
        custom_hooks=[dict(type='RecordRanks', model_attrs=('phase',))])])
    all_ids = set(build_dataset(DATA, split='train', load_gt=False).img_ids)  # generated once
    work_dir = run_torchrun(cfg, tmp_path)
    ranks = read_rank_records(work_dir / 'getam')
    assert [(r['rank'], r['world'], r['wrapper'], r['find_unused_parameters']) for r in ranks] \
        == [(0, 2, 'DeviceAwareDDP', True), (1, 2, 'DeviceAwareDDP', True)]
    # on CPU, sync_bn=True keeps plain BatchNorm and says so
    assert [r['norm_layers'] for r in ranks] == [['BatchNorm2d']] * 2
    assert 'SyncBatchNorm needs a GPU' in (tmp_path / 'torchrun.log').read_text()

    # 16 images / 2 ranks / batch 2 = 4 iterations; classification while (t - 1) < 0.5 * 4,
    # i.e. t = 0..2, then the joint phase: the same on both ranks
    expected = ['cls'] * 3 + ['joint']
    assert [[s['phase'] for s in r['steps']] for r in ranks] == [expected, expected]
    for epoch in range(EPOCHS):
        mine, theirs = (epoch_ids(r)[epoch] for r in ranks)
        assert len(mine) == len(theirs) == 8 and set(mine) | set(theirs) == all_ids
    # gradients averaged in both phases (unused parameters included): the same weights
    assert ranks[0]['end_digest'] == ranks[1]['end_digest'] != ranks[0]['start_digest']

    # seeding: the initial weights are the run seed's (the same on every rank, the same as
    # one process builds), while the data workers' augmentation draws differ per rank
    built = train_stage().build_model(context(tmp_path), dict(tiny_model(), num_classes=3))
    assert ranks[0]['start_digest'] == ranks[1]['start_digest'] == parameter_digest(built)
    drawn = [set((seeds / f'rank{r}.txt').read_text().split()) for r in (0, 1)]
    assert all(drawn) and not drawn[0] & drawn[1]
