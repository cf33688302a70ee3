"""EDAM's optimisation (spec ``edam_moana.md`` §A.7) as mmengine configuration.

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

import copy
from typing import List, Optional

import torch.nn as nn

from wsss_core.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS, build


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class EDAMOptimWrapperConstructor:
    """Builds the optimiser over the model's ``param_groups(lr, weight_decay, lr_mults)``
    (:class:`~wsss_edam.models.edam_classifier.EDAMClassifier`); ``paramwise_cfg`` may hold
    ``lr_mults=dict(new=10.0, ...)`` to change the multipliers."""

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        cfg = copy.deepcopy(dict(optim_wrapper_cfg))
        if 'optimizer' not in cfg:
            raise ValueError("optim_wrapper needs an 'optimizer' config")
        self.optimizer_cfg = dict(cfg.pop('optimizer'))
        cfg.setdefault('type', 'OptimWrapper')
        self.wrapper_cfg = cfg
        paramwise_cfg = dict(paramwise_cfg or {})
        unknown = sorted(set(paramwise_cfg) - {'lr_mults'})
        if unknown:
            raise TypeError(f'unknown EDAM paramwise_cfg key(s) {unknown}; known: [lr_mults]')
        self.lr_mults = paramwise_cfg.get('lr_mults')

    def __call__(self, model: nn.Module):
        model = getattr(model, 'module', model)
        if not hasattr(model, 'param_groups'):
            raise TypeError(f'EDAMOptimWrapperConstructor needs a model with param_groups() '
                            f'(EDAMClassifier), not {type(model).__name__}')
        opt = dict(self.optimizer_cfg)
        groups = model.param_groups(float(opt['lr']), float(opt.get('weight_decay', 0.0)),
                                    self.lr_mults)
        optimizer = build(dict(opt, params=groups), OPTIMIZERS)
        return build(dict(self.wrapper_cfg, optimizer=optimizer), OPTIM_WRAPPERS)


def warmup_poly_schedule(max_steps: int, warmup: int = 2000, power: float = 0.9) -> List[dict]:
    """EDAM's schedule (module docstring) as mmengine param-scheduler configs, by iteration."""
    warmup = int(min(warmup, max(1, max_steps - 1)))
    # mmengine's LinearLR reaches end_factor after (end - begin - 1) steps: end = W + 1 gives
    # 0.1 + 0.9 s / W; PolyLR's horizon is likewise one step short without the + 1
    return [dict(type='LinearLR', start_factor=0.1, end_factor=1.0, begin=0, end=warmup + 1,
                 by_epoch=False),
            dict(type='PolyLR', power=power, eta_min=0.0, begin=warmup, end=int(max_steps) + 1,
                 by_epoch=False)]
