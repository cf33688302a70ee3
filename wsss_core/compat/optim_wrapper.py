"""Patch: ``OptimWrapper.update_params`` gated per instance, so that an update can be held
back before it reaches the weights (the non-finite loss guard,
:mod:`wsss_core.pipeline.loss_guard`).

mmengine's ``train_step`` calls ``optim_wrapper.update_params(loss)`` (backward, then the
optimiser step) before any ``after_train_iter`` hook runs, so a hook alone sees a bad loss
only after it was back-propagated into the weights.  :func:`install_update_gate` replaces
the bound ``update_params`` of one wrapper (not the class) by :func:`gate_update_params`:

    update_params'(loss) = update_params(loss)                         if allow(loss)
                           on_held_back(); count the batch; None       otherwise

A held-back batch is still counted in the wrapper's gradient-accumulation window (mmengine
counts a batch in ``backward``, which did not run, through its private ``_inner_count``);
when the window ends with it, what the window's other batches accumulated is applied.  So
the update boundaries (and the schedule) stay where they would have been, no accumulated
gradient is left behind, and a window whose batches were all held back takes no step.

Version gate: :data:`UPDATE_GATE_VERSIONS` through :func:`.versions.require_checked` (it
relies on mmengine's ``train_step`` calling ``update_params`` and on the private counters of
``OptimWrapper``; without it a NaN loss would reach the weights).
"""
from __future__ import annotations

from typing import Callable, Optional

from .versions import require_checked

__all__ = ['UPDATE_GATE_VERSIONS', 'gate_update_params', 'install_update_gate',
           'count_held_back_batch']

#: mmengine (major, minor) versions on which :func:`gate_update_params` was checked
UPDATE_GATE_VERSIONS = ((0, 10),)


def gate_update_params(update_params: Callable, allow: Callable[[object], bool],
                       on_held_back: Callable[[], None],
                       version: Optional[str] = None) -> Callable:
    """``update_params`` (a wrapper's bound method, or an earlier gate) run only when
    ``allow(loss)``; otherwise ``on_held_back()`` is called, the batch is counted in the
    accumulation window of the wrapper ``update_params`` is bound to, and None returned."""
    require_checked('the update gate (OptimWrapper.update_params)', UPDATE_GATE_VERSIONS,
                    'holding back the update of a non-finite loss before it reaches the '
                    'weights', 'wsss_core.compat.optim_wrapper.UPDATE_GATE_VERSIONS', version)
    wrapper = getattr(update_params, '__self__', None)

    def update_params_if_allowed(loss, *args, **kwargs):
        if not allow(loss):
            on_held_back()
            if wrapper is not None:
                count_held_back_batch(wrapper)
            return None
        return update_params(loss, *args, **kwargs)
    return update_params_if_allowed


def install_update_gate(optim_wrapper, owner, gate: Callable[[Callable], Callable]) -> bool:
    """Replace ``optim_wrapper.update_params`` by ``gate(optim_wrapper.update_params)`` once
    per ``owner`` (True when this call did; a second owner wraps the first's gate)."""
    if getattr(optim_wrapper, '_wsss_loss_guard', None) is owner:
        return False
    optim_wrapper.update_params = gate(optim_wrapper.update_params)
    optim_wrapper._wsss_loss_guard = owner
    return True


def count_held_back_batch(wrapper) -> None:
    """Count a held-back batch in ``wrapper``'s gradient-accumulation window and, when the
    window ends with it, apply what the window's other batches accumulated (if anything)."""
    if getattr(wrapper, '_accumulative_counts', 1) <= 1:
        return
    wrapper._inner_count += 1
    if wrapper.should_update():
        params = [p for group in wrapper.optimizer.param_groups for p in group['params']]
        if any(p.grad is not None for p in params):
            wrapper.step()
        wrapper.zero_grad()
