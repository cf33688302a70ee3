"""TrainSegmentor with gradient accumulation (iter_size=2): the schedulers step after the
optimiser (no "scheduler.step() before optimizer.step()" warning), and update u trains with
the reference's lr_g (1 - k / T)^0.9, k = lr_interval * floor(u / lr_interval)."""
from __future__ import annotations

import warnings

import pytest
from mmengine.config import Config
from mmengine.hooks import Hook

from wsss_core.registry import HOOKS
from wsss_deeplab.testing import TINY_BACKBONE, registered  # noqa: F401 (fixture)
from wsss_core.testing import tiny_data_cfg

UPDATES = []   # per optimiser step: (runner.iter, [lr of each group], [initial lr of each])


@HOOKS.register_module(name='_RecordUpdateLR', force=True)
class RecordUpdateLR(Hook):
    """After each batch iteration that stepped the optimiser, the lr it stepped with."""

    priority = 'HIGHEST'   # before any scheduler hook moves the lr on

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.optim_wrapper.should_update():
            groups = runner.optim_wrapper.optimizer.param_groups
            UPDATES.append((runner.iter, [g['lr'] for g in groups],
                            [g['initial_lr'] for g in groups]))


@pytest.mark.parametrize('lr_interval', [1, 2])
def test_accumulation_steps_schedulers_after_the_optimiser(tmp_path, registered, lr_interval):
    from wsss_core.pipeline import Pipeline
    max_iters, iter_size = 4, 2
    cfg = Config(dict(seed=0, data=tiny_data_cfg(), stages=[
        dict(type='TrainSegmentor', name='deeplab', max_iters=max_iters, iter_size=iter_size,
             lr_interval=lr_interval, batch_size=2, crop_size=41, lr=0.01,
             checkpoint_interval=max_iters, log_interval=1,
             custom_hooks=[dict(type='_RecordUpdateLR')],
             model=dict(type='DeepLabV2', backbone=dict(TINY_BACKBONE)))]))
    UPDATES.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        Pipeline(cfg, tmp_path, progress=False, device='cpu').run()
    order = [str(w.message) for w in caught if 'optimizer.step()' in str(w.message)]
    assert order == []
    # one optimiser step per iter_size batches, at the last batch of each update
    assert [it for it, _, _ in UPDATES] == [1, 3, 5, 7]
    initial = UPDATES[0][2]
    assert len(initial) == 3 and initial[1] == pytest.approx(10 * initial[0])   # x1/x10/x20
    for u, (_, lrs, _) in enumerate(UPDATES):
        k = lr_interval * (u // lr_interval)
        assert lrs == pytest.approx([lr0 * (1 - k / max_iters) ** 0.9 for lr0 in initial])
