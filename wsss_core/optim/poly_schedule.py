"""The poly learning-rate schedule of DeepLab: lr(it) = lr_0 (1 - it / T)^0.9.

deeplab-pytorch (``docs/methods/deeplab.md#45-optimisation``) decays every group's lr with power 0.9
over ``T = 20000`` iterations, recomputing it every ``LR_DECAY = 10`` iterations.

mmengine's ``PolyLR`` is chainable: after ``k`` steps it holds
``lr_0 * prod_{j=1..k} (1 - 1 / (N - j + 1))^p = lr_0 ((N - k) / N)^p`` with
``N = end - begin - 1``; :func:`poly_schedule` therefore sets ``end = max_iters + 1`` so that
iteration ``it`` (0-based) trains with exactly ``lr_0 (1 - it / max_iters)^p``.

:class:`SteppedPolyLR` is the reference's variant, constant over blocks of ``interval``
iterations: ``lr(it) = eta_min + (lr_0 - eta_min)(1 - k / N)^p`` with
``k = interval * floor(it / interval)`` (closed form, so the group multipliers are kept).
"""
from __future__ import annotations

from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import PolyParamScheduler

from ..pipeline.schedules import poly_schedule as core_poly_schedule
from ..registry import PARAM_SCHEDULERS

__all__ = ['poly_schedule', 'poly_lr', 'SteppedPolyLR']


def poly_lr(base_lr: float, it: int, max_iters: int, power: float = 0.9,
            interval: int = 1, eta_min: float = 0.0) -> float:
    """The schedule's value at 0-based iteration ``it`` (the formula above)."""
    k = (it // interval) * interval
    return eta_min + (base_lr - eta_min) * (1.0 - k / max_iters) ** power


def poly_schedule(max_iters: int, power: float = 0.9, eta_min: float = 0.0,
                  interval: int = 1) -> list:
    """``param_scheduler`` config: poly decay over ``max_iters`` iterations (see docstring).

    ``interval=1`` uses mmengine's ``PolyLR``; ``interval > 1`` uses :class:`SteppedPolyLR`
    (the reference recomputes every 10 iterations).
    """
    sched = core_poly_schedule(max_iters, power, eta_min)
    if interval != 1:
        sched[0].update(type='SteppedPolyLR', interval=int(interval))
    return sched


@PARAM_SCHEDULERS.register_module()
class SteppedPolyLR(LRSchedulerMixin, PolyParamScheduler):
    """Poly lr recomputed every ``interval`` steps, in closed form (see the module docstring).

    Args as mmengine's ``PolyLR`` plus ``interval`` (reference: 10).
    """

    def __init__(self, optimizer, interval: int = 10, **kwargs):
        if int(interval) < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        self.interval = int(interval)
        super().__init__(optimizer, **kwargs)

    def _get_value(self):
        k = (self.last_step // self.interval) * self.interval
        factor = max(0.0, 1.0 - k / self.total_iters) ** self.power
        return [self.eta_min + (base - self.eta_min) * factor for base in self.base_values]
