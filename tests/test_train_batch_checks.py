"""Training stages refuse a batch set-up that cannot train, before any training.

* ``drop_last=True`` with fewer training images per process than ``batch_size`` leaves no
  batch in an epoch (mmengine would stop with "epoch_length must be a positive integer");
* a model class may declare ``min_train_batch_size`` (e.g. a BatchNorm over a pooled 1x1
  map needs 2 images), checked when the stage is built.
"""
from __future__ import annotations

import pytest
import torch.nn as nn
from mmengine.config import Config

from wsss_core.pipeline import Pipeline, StageError
from wsss_core.pipeline.training_stage import TrainingStage
from wsss_core.pipeline.train_classifier import TrainClassifier
from wsss_core.testing import TINY_GENERATOR, tiny_classify_stage


def classify(**options) -> TrainClassifier:
    from wsss_core.components import register_core_components
    register_core_components()
    cfg = tiny_classify_stage(**options)
    cfg.pop('type')
    return TrainClassifier(**cfg)


@pytest.mark.parametrize('images, batch, drop_last, ok', [
    (4, 4, True, True),      # one full batch
    (3, 4, True, False),     # the only batch is incomplete and dropped
    (0, 4, True, False),
    (3, 4, False, True),     # kept: one batch of 3
])
def test_drop_last_needs_one_full_batch(images, batch, drop_last, ok):
    stage = classify(batch_size=batch, drop_last=drop_last)
    if ok:
        stage.check_batches_per_epoch(range(images))
        return
    with pytest.raises(StageError) as err:
        stage.check_batches_per_epoch(range(images))
    message = str(err.value)
    assert f"'train' has {images} images" in message and f'batch_size={batch}' in message
    assert 'drop_last=False' in message
    assert (f'set batch_size={images} or less' in message) == (images > 0)


# (before: the default schedule trained nothing and reported the untrained model's metrics;
# an epoch-based one, e.g. the MoANA configs', stopped in mmengine's "epoch_length must be
# a positive integer, but got 0")
@pytest.mark.parametrize('schedule', [None, [dict(type='PolyLR', power=0.9, by_epoch=True,
                                                   convert_to_iter_based=True)]])
def test_small_split_with_drop_last_stops_before_training(tmp_path, monkeypatch,
                                                          tiny_data_cfg, schedule):
    import mmengine.runner

    def no_runner(*args, **kwargs):
        raise AssertionError('the Runner was built')

    monkeypatch.setattr(mmengine.runner, 'Runner', no_runner)
    batch = TINY_GENERATOR['num_train'] + 1
    cfg = Config(dict(seed=0, data=tiny_data_cfg,
                      stages=[tiny_classify_stage(batch_size=batch, drop_last=True,
                                                  param_scheduler=schedule)]))
    with pytest.raises(StageError, match=rf"has 16 images, fewer than batch_size={batch}"):
        Pipeline(cfg, tmp_path, progress=False, device='cpu').run()


class NeedsTwo(nn.Module):
    min_train_batch_size = 2
    min_train_batch_reason = 'BatchNorm over a 1x1 map'


def test_model_minimum_batch_is_checked_when_the_stage_is_built():
    stage = TrainingStage('train')
    with pytest.raises(StageError) as err:
        stage.check_batch_size(dict(type=NeedsTwo), 1)
    assert 'NeedsTwo cannot train on batches of 1' in str(err.value)
    assert '(BatchNorm over a 1x1 map)' in str(err.value) and 'batch_size=2' in str(err.value)
    stage.check_batch_size(dict(type=NeedsTwo), 2)
    stage.check_batch_size(dict(type=nn.Module), 1)          # no declared minimum
    TrainingStage('train', sync_bn=True).check_batch_size(dict(type=NeedsTwo), 1)
