"""GETAM's two-phase schedule as an mmengine hook (``docs/methods/getam.md`` §2.7).

With T the run's iterations, t the current one and ``cls_fraction`` = 0.5:

    phase_t = 'cls'   if t - 1 < cls_fraction * T   else 'joint'     (t = 0, 1, ...)
    lr_t    = lr_0 (1 - t / T)^power * (1 if phase_t == 'cls' else seg_lr_scale)

(lr_0 each parameter group's initial lr, power 0.9, seg_lr_scale 0.1): classification only
for the first half, then all losses at a tenth of the poly lr.  Both are recomputed from t
before every iteration, so a resumed run continues exactly (nothing to restore); the stage
gives the Runner no other parameter scheduler.
"""
from __future__ import annotations

import math

from mmengine.hooks import Hook

from wsss_core.registry import HOOKS

__all__ = ['GETAMScheduleHook', 'getam_lr_factor']


def getam_lr_factor(t: int, total: int, power: float, joint: bool, seg_lr_scale: float) -> float:
    """``(1 - t / T)^power``, times ``seg_lr_scale`` in the joint phase."""
    factor = max(0.0, 1.0 - t / max(1, total)) ** power
    return factor * (seg_lr_scale if joint else 1.0)


@HOOKS.register_module()
class GETAMScheduleHook(Hook):
    """Set the model's phase and the poly lr before every training iteration.

    It runs before mmengine's ``RuntimeInfoHook`` (VERY_HIGH), which records the optimiser's
    lr for the log in its own ``before_train_iter``: so the logged lr is iteration t's,
    not the one left over from t - 1.
    """

    priority = 'HIGHEST'

    def __init__(self, cls_fraction: float = 0.5, seg_lr_scale: float = 0.1,
                 power: float = 0.9):
        if not 0.0 <= cls_fraction <= 1.0:
            raise ValueError(f'cls_fraction must lie in [0, 1], got {cls_fraction}')
        self.cls_fraction = float(cls_fraction)
        self.seg_lr_scale = float(seg_lr_scale)
        self.power = float(power)

    def switch_iter(self, total: int) -> int:
        """The first iteration of the joint phase: the reference trains the class head while
        ``(t - 1) < cls_fraction * T`` (0-based t), so the switch is ``ceil(cls_fraction T) + 1``
        (26451 of 52900 steps on VOC)."""
        return math.ceil(self.cls_fraction * total) + 1

    def before_train(self, runner) -> None:
        from wsss_core.models.protocols import PhasedModel, require_model
        require_model(runner.model, PhasedModel, 'GETAMScheduleHook')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        t, total = runner.iter, runner.max_iters
        joint = t >= self.switch_iter(total)
        model.phase = 'joint' if joint else 'cls'
        factor = getam_lr_factor(t, total, self.power, joint, self.seg_lr_scale)
        for group in runner.optim_wrapper.optimizer.param_groups:
            group.setdefault('initial_lr', group['lr'])
            group['lr'] = group['initial_lr'] * factor
