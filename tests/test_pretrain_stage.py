"""The Pretrain stage end to end at tiny size: it trains on the ShapeCorpus, caches the
backbone's weights by content hash, every work dir reuses them, a changed recipe makes new
ones, and a training stage starts from them through ``pretrained_from``."""
from __future__ import annotations

import copy

import pytest
import torch
from mmengine.config import Config

from wsss_core.pipeline import Pipeline
from wsss_core.pipeline.pretrain import pretrained_cache_dir
from wsss_core.testing import tiny_classify_stage, tiny_data_cfg

BACKBONE = dict(type='SmallResNet', widths=(8, 8, 16, 16))
CORPUS = dict(type='ShapeCorpus', progress=False, workers=0,
              generator=dict(image_size=32, num_classes=4, train_per_class=4, val_per_class=2))


def _cfg(**pretrain) -> dict:
    stage = dict(type='Pretrain', name='pretrain', backbone=dict(BACKBONE), corpus=CORPUS,
                 max_epochs=1, batch_size=8, log_interval=1)
    stage.update(pretrain)
    # lr 0: the classifier's convolutions stay the pretrained ones (BN statistics move)
    classify = tiny_classify_stage(
        val_split=None, pretrained_from='pretrain',
        optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.0)))
    return dict(seed=0, data=tiny_data_cfg(), stages=[stage, classify])


def _run(cfg, work_dir):
    return {r.name: r for r in Pipeline(Config(copy.deepcopy(cfg)), work_dir,
                                        progress=False).run()}


@pytest.fixture(scope='module')
def first(tmp_path_factory, core_registered):
    torch.set_num_threads(1)
    work = tmp_path_factory.mktemp('pretrain') / 'a'
    return work, _run(_cfg(), work)


def test_pretrain_caches_backbone_weights_under_their_own_names(first):
    work, res = first
    art = res['pretrain'].manifest['artifacts']
    weights = pretrained_cache_dir() / art['backbone_weights'].rsplit('/', 1)[-1]
    assert art['backbone_weights'] == str(weights) and weights.name.startswith('SmallResNet-')
    state = torch.load(weights, weights_only=True)
    from wsss_core.models.small_resnet import SmallResNet
    assert set(state) == set(SmallResNet(widths=(8, 8, 16, 16)).state_dict())
    metrics = res['pretrain'].manifest['metrics']
    assert 0.0 <= metrics['cls/top1'] <= 1.0 and res['pretrain'].status == 'ran'
    # the downstream classifier started from exactly those convolution weights
    trained = torch.load(work / 'classify' / 'model.pth', weights_only=True)
    convs = [k for k in state if k.endswith('conv1.weight') or k.endswith('conv2.weight')]
    assert convs and all(torch.equal(trained[f'backbone.{k}'], state[k]) for k in convs)


def test_another_work_dir_reuses_the_cache_and_a_new_recipe_makes_new_weights(first, tmp_path):
    work, res = first
    weights = res['pretrain'].manifest['artifacts']['backbone_weights']
    mtime = pretrained_cache_dir().joinpath(weights.rsplit('/', 1)[-1]).stat().st_mtime_ns
    again = _run(_cfg(), tmp_path / 'b')
    manifest = again['pretrain'].manifest
    assert again['pretrain'].status == 'ran' and manifest.get('reused_cache') is True
    assert manifest['artifacts']['backbone_weights'] == weights
    assert not (tmp_path / 'b' / 'pretrain' / 'model.pth').exists()     # nothing trained
    assert pretrained_cache_dir().joinpath(weights.rsplit('/', 1)[-1]).stat().st_mtime_ns == mtime
    assert manifest['metrics'] == res['pretrain'].manifest['metrics']
    other = _run(_cfg(label_smoothing=0.0), tmp_path / 'c')
    assert other['pretrain'].manifest['artifacts']['backbone_weights'] != weights
    assert not other['pretrain'].manifest.get('reused_cache')


def test_a_corpus_without_a_type_is_a_shape_corpus(core_registered):
    """``corpus=dict(generator=...)`` fills in the ShapeCorpus type instead of failing in
    mmengine's builder; a given type is kept."""
    from wsss_core.pipeline.pretrain import Pretrain
    stage = Pretrain('p', backbone=dict(BACKBONE), corpus=dict(generator=dict(image_size=32)))
    assert stage.data_config(None) == dict(type='ShapeCorpus', generator=dict(image_size=32))
    assert Pretrain('q', backbone=dict(BACKBONE)).data_config(None) == dict(type='ShapeCorpus')
    other = Pretrain('r', backbone=dict(BACKBONE), corpus=dict(type='TaggedFolder', root='x'))
    assert other.data_config(None) == dict(type='TaggedFolder', root='x')
