"""NonFiniteLossGuard: a NaN or infinite loss stops training with the iteration and the batch's
image ids, before the update reaches the weights and before a checkpoint of it is written.
"""
from __future__ import annotations

import logging

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper

from wsss_core.models.cam_classifier import CAMClassifier
from wsss_core.pipeline import Pipeline, read_manifest
from wsss_core.pipeline.loss_guard import (NonFiniteLossError, NonFiniteLossGuard,
                                           batch_image_ids, nonfinite_terms, with_loss_guard)
from wsss_core.pipeline.train_classifier import TrainClassifier
from wsss_core.registry import MODELS
from wsss_core.testing import tiny_pipeline_cfg


@MODELS.register_module()
class _LossTurnsBadClassifier(CAMClassifier):
    """A CAMClassifier whose loss is ``bad`` ('nan' or 'inf') at training call ``bad_at``
    (1-based); ``calls`` records the image ids of every training call."""

    calls: list = []

    def __init__(self, bad_at: int = 3, bad: str = 'nan', **kwargs):
        super().__init__(**kwargs)
        self.bad_at, self.bad = bad_at, float(bad)

    def forward(self, img, labels=None, mode='tensor', **kwargs):
        out = super().forward(img, labels, mode, **kwargs)
        if mode == 'loss':
            type(self).calls.append(list(kwargs['img_id']))
            if len(type(self).calls) == self.bad_at:
                out = {k: v * self.bad for k, v in out.items()}
        return out


def classify_cfg(data_cfg, bad='nan', **stage):
    """Two epochs of 2 batches (16 images, batch 8): training call 3 is epoch 2, batch 1."""
    cfg = tiny_pipeline_cfg(data_cfg, epochs=2)
    cfg['stages'] = cfg['stages'][:1]
    cfg['stages'][0].update(val_split=None, **stage)
    cfg['stages'][0]['model'] = dict(cfg['stages'][0]['model'], type='_LossTurnsBadClassifier',
                                     bad_at=3, bad=bad)
    return cfg


@pytest.fixture(autouse=True)
def _fresh_calls():
    _LossTurnsBadClassifier.calls = []


def checkpoint_weights(path):
    ckpt = torch.load(path, map_location='cpu', weights_only=False)
    return ckpt['state_dict']


@pytest.mark.parametrize('bad', ['nan', 'inf'])
def test_bad_loss_stops_training_naming_iteration_and_images(tmp_path, tiny_data_cfg, bad):
    cfg = classify_cfg(tiny_data_cfg, bad)
    with pytest.raises(NonFiniteLossError) as info:
        Pipeline(Config(cfg), tmp_path, progress=False).run()
    msg = str(info.value)
    calls = _LossTurnsBadClassifier.calls
    assert len(calls) == 3, 'training went on after the bad loss'
    assert '[classify]' in msg and 'at iteration 3 (epoch 2, batch 1 of 2)' in msg
    assert f'loss_cls = {float(bad)}' in msg
    assert 'images of the batch: ' + ', '.join(calls[2]) + '.' in msg and len(calls[2]) == 8
    # the checkpoint of epoch 1 is intact and finite, none was written after the bad loss
    stage_dir = tmp_path / 'classify'
    assert (stage_dir / 'last_checkpoint').read_text().strip().endswith('epoch_1.pth')
    assert not (stage_dir / 'epoch_2.pth').exists() and not (stage_dir / 'model.pth').exists()
    state = checkpoint_weights(stage_dir / 'epoch_1.pth')
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    assert 'epoch_1.pth' in msg and read_manifest(stage_dir) is None


def test_cli_exits_1_with_the_message(tmp_path, tiny_data_cfg, capsys):
    from wsss_core.cli import main
    config = tmp_path / 'nan.py'
    config.write_text('\n'.join(f'{k} = {v!r}' for k, v in classify_cfg(tiny_data_cfg).items()))
    assert main([str(config), '--work-dir', str(tmp_path / 'work'), '--no-progress']) == 1
    err = capsys.readouterr().err
    assert "wsss-run: stage 'classify' failed: " in err           # the stage is named
    assert 'non-finite loss (loss = nan, loss_cls = nan) at iteration 3' in err
    assert ', '.join(_LossTurnsBadClassifier.calls[2]) in err


def test_warn_mode_skips_the_update_and_finishes_with_finite_weights(tmp_path, tiny_data_cfg,
                                                                     caplog):
    cfg = classify_cfg(tiny_data_cfg, nonfinite_loss='warn')
    with caplog.at_level(logging.WARNING, logger='wsss'):
        res = Pipeline(Config(cfg), tmp_path, progress=False).run()[0]
    assert res.status == 'ran' and len(_LossTurnsBadClassifier.calls) == 4
    warned = [r.getMessage() for r in caplog.records if 'non-finite loss' in r.getMessage()]
    assert len(warned) == 1 and 'iteration 3' in warned[0] and 'skipped' in warned[0]
    state = torch.load(tmp_path / 'classify' / 'model.pth', weights_only=True)
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()), \
        'the NaN update reached the weights'


def test_the_update_of_a_bad_loss_never_reaches_the_weights():
    """The guard wraps OptimWrapper.update_params: no backward, no step for a bad loss."""
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    wrapper = OptimWrapper(torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9))

    class Runner:
        optim_wrapper = wrapper

    guard = NonFiniteLossGuard(stage='s')
    guard.before_train(Runner)
    guard.before_train(Runner)                      # installing twice wraps once
    before = [p.detach().clone() for p in net.parameters()]
    x = torch.randn(4, 3)
    for bad in (float('nan'), float('inf'), -float('inf')):
        wrapper.update_params(net(x).sum() * bad)
        assert all(torch.equal(p, q) for p, q in zip(net.parameters(), before))
        assert all(p.grad is None or not p.grad.any() for p in net.parameters())
        assert not wrapper.optimizer.state, 'the optimiser state moved'
    assert guard.held_back == 3
    wrapper.update_params(net(x).sum())             # a finite loss still trains
    assert not all(torch.equal(p, q) for p, q in zip(net.parameters(), before))


def test_after_iter_raises_on_any_bad_loss_term_and_ignores_other_values():
    class Loop:
        pass

    class Runner:
        iter, epoch, work_dir, train_loop = 6, 0, '/nonexistent', Loop()

    guard = NonFiniteLossGuard(stage='seg')
    good = dict(loss=torch.tensor(1.0), loss_aux=torch.tensor(0.5), acc=float('nan'))
    guard.after_train_iter(Runner, 6, dict(img_id=['a']), good)   # 'acc' is not a loss
    bad = dict(loss=torch.tensor(float('inf')), loss_aux=torch.tensor([1.0, float('nan')]))
    with pytest.raises(NonFiniteLossError) as info:
        guard.after_train_iter(Runner, 6, dict(img_id=['a', 'b']), bad)
    msg = str(info.value)
    assert '[seg] non-finite loss (loss = inf, loss_aux = 1 NaN, 0 inf of 2) at iteration 7;' \
        in msg and 'images of the batch: a, b.' in msg


def test_nonfinite_terms_and_batch_image_ids():
    from mmengine.structures import BaseDataElement
    assert nonfinite_terms(dict(loss_a=torch.tensor(2.0), loss_b=float('-inf'), n=3)) == \
        {'loss_b': '-inf'}
    assert batch_image_ids(dict(img=torch.zeros(2), img_id=['x', 'y'])) == ['x', 'y']
    assert batch_image_ids([dict(img_id='x'), dict(img_id='y')]) == ['x', 'y']
    pairs = dict(first=dict(img_id=['a', 'b']), second=dict(img_id=['c', 'd']))
    assert batch_image_ids(pairs) == ['a', 'b', 'c', 'd']
    samples = [BaseDataElement(metainfo=dict(img_id='s1')),
               BaseDataElement(metainfo=dict(img_path='/d/s2.jpg'))]
    assert batch_image_ids(dict(inputs=torch.zeros(1), data_samples=samples)) == \
        ['s1', '/d/s2.jpg']
    assert batch_image_ids(dict(img=torch.zeros(1))) == []


def test_every_training_runner_gets_the_guard_and_the_default_keeps_the_config_hash(
        core_registered):
    assert with_loss_guard('c', [dict(type='X')]) == [
        dict(type='X'), dict(type='NonFiniteLossGuard', stage='c', mode='error')]
    own = [dict(type='NonFiniteLossGuard', mode='warn')]
    assert with_loss_guard('c', own, None) == [dict(type='NonFiniteLossGuard', mode='warn',
                                                    stage='c')]
    with pytest.raises(ValueError, match='nonfinite_loss'):
        with_loss_guard('c', [], 'ignore')
    model = dict(type='CAMClassifier', backbone=dict(type='SmallResNet'))
    assert 'nonfinite_loss' not in TrainClassifier('c', model=model).hashed_options()
    assert TrainClassifier('c', model=model, nonfinite_loss='warn').options[
        'nonfinite_loss'] == 'warn'


@pytest.mark.parametrize('nan_at, steps', [(None, [2, 4, 6]), (2, [2, 4, 6]), (5, [2, 4, 6]),
                                           ((3, 4), [2, 6])])
def test_held_back_batches_keep_the_accumulation_windows(nan_at, steps):
    """Gradient accumulation over 2 batches, 6 batches: the optimiser steps after batches 2,
    4 and 6 whichever batch is held back (a window of only held-back batches takes no step),
    and no accumulated gradient is left unapplied at the end."""
    bad = {nan_at} if isinstance(nan_at, int) else set(nan_at or ())
    torch.manual_seed(0)
    net = torch.nn.Linear(2, 1, bias=False)
    wrapper = OptimWrapper(torch.optim.SGD(net.parameters(), lr=1.0), accumulative_counts=2)
    wrapper.initialize_count_status(net, 0, 6)
    guard = NonFiniteLossGuard('demo', mode='warn')
    wrapper.update_params = guard._guarded(wrapper.update_params)
    seen, batch = [], 0
    real_step = wrapper.step
    wrapper.step = lambda **kw: (seen.append(batch), real_step(**kw))
    for batch in range(1, 7):
        loss = net(torch.ones(1, 2)).sum()
        wrapper.update_params(loss * float('nan') if batch in bad else loss)
    assert seen == steps
    assert net.weight.grad is None or not net.weight.grad.abs().sum()


@pytest.mark.parametrize('option', [dict(nonfinite_loss='skip'), dict(sync_bn='yes'),
                                    dict(find_unused_parameters=1), dict(compile='fast')])
def test_bad_training_options_are_refused_when_the_stage_is_built(option):
    """Before any earlier stage of the pipeline runs, not when this one starts."""
    from wsss_core.pipeline.stage import StageError
    from wsss_core.pipeline.train_segmentor import TrainSegmentor
    model = dict(type='CAMClassifier', backbone=dict(type='SmallResNet'))
    key = next(iter(option))
    with pytest.raises(StageError, match=key):
        TrainClassifier('c', model=model, **option)
    with pytest.raises(StageError, match=key):
        TrainSegmentor('seg', model=dict(type='DeepLabV2'), labels=None, **option)
