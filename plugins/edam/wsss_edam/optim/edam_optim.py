"""EDAM's optimisation (``docs/methods/edam.md#7-training``) as mmengine configuration.

Parameter groups (SGD, momentum 0.9, weight decay 5e-4 on all of them):

==============  ===================================================  ==========
group           parameters                                           lr
==============  ===================================================  ==========
``backbone``    the (ImageNet-initialised) backbone                   lr x 1
``new``         DA conv, the 128-channel reduction, the class heads  lr x 10
``transformer`` segment embedding and the per-class encoders         lr x 1
==============  ===================================================  ==========

(the reference's bias groups x2 / x20 are empty: its convolutions have no bias; its frozen
BatchNorms are in no group.)  Schedule, per optimiser step s of S:

    lr(s) = lr * (0.1 + 0.9 s / W)                  for s < W  (warm-up, W = 2000)
    lr(s) = lr * (1 - (s - W) / (S - W)) ** 0.9     after

:func:`warmup_poly_schedule` gives it as mmengine ``LinearLR`` + ``PolyLR``.
"""
from __future__ import annotations

from typing import List

import torch.nn as nn

from wsss_core.registry import OPTIM_WRAPPER_CONSTRUCTORS
from wsss_core.optim.param_groups import ParamGroupsOptimWrapperConstructor


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class EDAMOptimWrapperConstructor(ParamGroupsOptimWrapperConstructor):
    """Builds the optimiser over the model's ``param_groups(lr, weight_decay, lr_mults)``
    (:class:`~wsss_edam.models.edam_classifier.EDAMClassifier`); ``paramwise_cfg`` may hold
    ``lr_mults=dict(new=10.0, ...)`` to change the multipliers."""

    def parse_paramwise(self, paramwise_cfg: dict) -> None:
        unknown = sorted(set(paramwise_cfg) - {'lr_mults'})
        if unknown:
            raise TypeError(f'unknown EDAM paramwise_cfg key(s) {unknown}; known: [lr_mults]')
        self.lr_mults = paramwise_cfg.get('lr_mults')

    def param_groups(self, model: nn.Module, lr: float, weight_decay: float) -> List[dict]:
        from wsss_core.models.protocols import ParamGroupProvider, require_model
        require_model(model, ParamGroupProvider, 'EDAMOptimWrapperConstructor (e.g. for '
                                                 'EDAMClassifier)')
        return model.param_groups(lr, weight_decay, self.lr_mults)


def warmup_poly_schedule(max_steps: int, warmup: int = 2000, power: float = 0.9) -> List[dict]:
    """EDAM's schedule (module docstring) as mmengine param-scheduler configs, by iteration."""
    warmup = int(min(warmup, max(1, max_steps - 1)))
    # mmengine's LinearLR reaches end_factor after (end - begin - 1) steps: end = W + 1 gives
    # 0.1 + 0.9 s / W; PolyLR's horizon is likewise one step short without the + 1
    return [dict(type='LinearLR', start_factor=0.1, end_factor=1.0, begin=0, end=warmup + 1,
                 by_epoch=False),
            dict(type='PolyLR', power=power, eta_min=0.0, begin=warmup, end=int(max_steps) + 1,
                 by_epoch=False)]
