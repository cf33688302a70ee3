"""Parameter schedulers under gradient accumulation: stepped only after the optimiser steps.

With ``accumulative_counts = n`` (mmengine's ``OptimWrapper``) the optimiser steps after every
n-th batch iteration, but mmengine's ``ParamSchedulerHook`` steps the iteration-based
schedulers after every batch iteration: the first scheduler step comes before the first
optimiser step, which mmengine (as torch) reports at every run ("Detected call of
`scheduler.step()` before `optimizer.step()`").

:class:`UpdateParamSchedulerHook` steps them only after a batch iteration that updated the
parameters, as many times as batch iterations have passed, so they still count batch
iterations: after iteration ``i`` (0-based) that ends an update, every scheduler has made
``i + 1`` steps (besides the one at construction).  Update ``u`` (batches ``n u .. n u + n - 1``)
then trains with the schedule's value at its first batch:

    lr(update u) = schedule(n u)

DeepLab's stepped poly (recomputed every ``n * lr_interval`` batches) gives the same value at
every batch of an update, so its updates train with the same lr as before, the reference's
``lr_0 (1 - k / T)^p``.  Without accumulation (n = 1) the hook is mmengine's.
"""
from __future__ import annotations

from mmengine.hooks import ParamSchedulerHook

__all__ = ['UpdateParamSchedulerHook']


def _iteration_schedulers(param_schedulers) -> list:
    groups = (param_schedulers.values() if isinstance(param_schedulers, dict)
              else [param_schedulers])
    return [s for group in groups for s in group if not s.by_epoch]


class UpdateParamSchedulerHook(ParamSchedulerHook):
    """mmengine's ``ParamSchedulerHook`` whose iteration-based schedulers step only after
    the optimiser has stepped (see the module docstring); epoch-based ones are unchanged.

    An optimiser wrapper without ``should_update`` (e.g. ``OptimWrapperDict``) keeps
    mmengine's rule (a step after every iteration).
    """

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if runner.param_schedulers is None:
            return
        wrapper = runner.optim_wrapper
        if not hasattr(wrapper, 'should_update'):
            super().after_train_iter(runner, batch_idx, data_batch, outputs)
            return
        if not wrapper.should_update():   # mid-accumulation: the optimiser has not stepped
            return
        steps = runner.iter + 1             # batch iterations done, this one included
        for scheduler in _iteration_schedulers(runner.param_schedulers):
            while scheduler._global_step < steps:
                scheduler.step()
