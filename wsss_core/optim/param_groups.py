"""DeepLab's optimiser parameter groups: lr x1 backbone, x10 head weights, x20 head biases.

In the core because other methods train with them too (OAA and NSROM by name,
EDAM's constructor derives from :class:`ParamGroupsOptimWrapperConstructor`).

deeplab-pytorch (``docs/methods/deeplab.md#45-optimisation``) trains with SGD (momentum 0.9, base lr
2.5e-4, weight decay 5e-4) over three groups:

=================  ==============================  ===========  ===============
group              parameters                      lr           weight decay
=================  ==============================  ===========  ===============
``backbone``       backbone conv weights           lr x 1       wd
``head_weight``    ASPP (head) weights             lr x 10      wd
``head_bias``      ASPP (head) biases              lr x 20      0
=================  ==============================  ===========  ===============

BatchNorm parameters are absent because the backbone's norms are frozen (buffers, not
parameters).  The rule here: a parameter whose name starts with ``backbone.`` is backbone,
everything else is head; within each part, tensors with more than one dimension are
"weights" and the rest (biases, norm scales/shifts, e.g. of a v3+ head or a trainable-BN
backbone) are "biases" (``weight_rule='name'``: every ``*.weight`` is a weight, norm scales
included, as the OAA / NSROM reference code splits them).  The group lr is ``lr * lr_mult`` and its weight decay
``weight_decay * decay_mult``; multipliers come from ``paramwise_cfg``::

    optim_wrapper = dict(
        type='OptimWrapper', accumulative_counts=2,        # ITER_SIZE 2: loss / 2, step every 2
        optimizer=dict(type='SGD', lr=2.5e-4, momentum=0.9, weight_decay=5e-4),
        constructor='DeepLabOptimWrapperConstructor',
        paramwise_cfg=dict(head_lr_mult=10, head_bias_lr_mult=20, head_bias_decay_mult=0))

Each group carries its ``name``, ``lr_mult`` and ``decay_mult`` (for logs and tests).
Parameters with ``requires_grad=False`` are left out; empty groups are dropped.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Dict, List, Optional

import torch.nn as nn

from ..registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS, build

__all__ = ['GroupRules', 'deeplab_param_groups', 'ParamGroupsOptimWrapperConstructor',
           'DeepLabOptimWrapperConstructor']


@dataclasses.dataclass(frozen=True)
class GroupRules:
    """lr / weight-decay multipliers per group (reference values as defaults)."""

    backbone_lr_mult: float = 1.0
    backbone_decay_mult: float = 1.0
    backbone_bias_lr_mult: float = 1.0
    backbone_bias_decay_mult: float = 1.0
    head_lr_mult: float = 10.0
    head_decay_mult: float = 1.0
    head_bias_lr_mult: float = 20.0
    head_bias_decay_mult: float = 0.0
    backbone_prefix: str = 'backbone.'
    #: 'ndim': tensors with more than one dimension are weights (norm scales are "biases");
    #: 'name': parameters whose name ends in ``weight`` are weights (a norm's scale too),
    #: the rule of the OAA / NSROM reference code
    weight_rule: str = 'ndim'

    @classmethod
    def from_cfg(cls, cfg: Optional[dict]) -> 'GroupRules':
        cfg = dict(cfg or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise TypeError(f'unknown DeepLab paramwise_cfg key(s) {unknown}; known: '
                            f'{sorted(known)}')
        if cfg.get('weight_rule', 'ndim') not in ('ndim', 'name'):
            raise ValueError(f"weight_rule must be 'ndim' or 'name', not {cfg['weight_rule']!r}")
        return cls(**cfg)

    def multipliers(self, group: str) -> tuple:
        """``(lr_mult, decay_mult)`` of ``group``."""
        return {'backbone': (self.backbone_lr_mult, self.backbone_decay_mult),
                'backbone_bias': (self.backbone_bias_lr_mult, self.backbone_bias_decay_mult),
                'head_weight': (self.head_lr_mult, self.head_decay_mult),
                'head_bias': (self.head_bias_lr_mult, self.head_bias_decay_mult)}[group]


GROUP_ORDER = ('backbone', 'backbone_bias', 'head_weight', 'head_bias')


def group_of(name: str, param, rules: GroupRules) -> str:
    """The group of one named parameter (see the module docstring)."""
    in_backbone = name.startswith(rules.backbone_prefix)
    if rules.weight_rule == 'name':
        is_weight = name.rsplit('.', 1)[-1] == 'weight'
    else:
        is_weight = param.ndim > 1
    if in_backbone:
        return 'backbone' if is_weight else 'backbone_bias'
    return 'head_weight' if is_weight else 'head_bias'


def deeplab_param_groups(model: nn.Module, lr: float, weight_decay: float = 0.0,
                         rules: Optional[GroupRules] = None) -> List[dict]:
    """The optimiser's param groups for ``model`` (see the module docstring)."""
    rules = rules or GroupRules()
    buckets: Dict[str, list] = {g: [] for g in GROUP_ORDER}
    for name, param in model.named_parameters():
        if param.requires_grad:
            buckets[group_of(name, param, rules)].append(param)
    groups = []
    for group in GROUP_ORDER:
        if not buckets[group]:
            continue
        lr_mult, decay_mult = rules.multipliers(group)
        groups.append(dict(name=group, params=buckets[group], lr=lr * lr_mult,
                           weight_decay=weight_decay * decay_mult, lr_mult=lr_mult,
                           decay_mult=decay_mult))
    return groups


class ParamGroupsOptimWrapperConstructor:
    """Base of mmengine optimiser-wrapper constructors that build explicit param groups.

    ``optim_wrapper_cfg`` is the ``optim_wrapper`` config without ``constructor`` and
    ``paramwise_cfg`` (mmengine removes them); its ``optimizer`` gives ``lr`` and
    ``weight_decay``.  Subclasses parse ``paramwise_cfg`` (:meth:`parse_paramwise`) and
    return the groups (:meth:`param_groups`).
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        cfg = copy.deepcopy(dict(optim_wrapper_cfg))
        if 'optimizer' not in cfg:
            raise ValueError("optim_wrapper needs an 'optimizer' config")
        self.optimizer_cfg = dict(cfg.pop('optimizer'))
        cfg.setdefault('type', 'OptimWrapper')
        self.wrapper_cfg = cfg
        self.parse_paramwise(dict(paramwise_cfg or {}))

    def parse_paramwise(self, paramwise_cfg: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def param_groups(self, model: nn.Module, lr: float, weight_decay: float
                     ) -> List[dict]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, model: nn.Module):
        model = getattr(model, 'module', model)
        opt = dict(self.optimizer_cfg)
        groups = self.param_groups(model, float(opt['lr']), float(opt.get('weight_decay', 0.0)))
        optimizer = build(dict(opt, params=groups), OPTIMIZERS)
        return build(dict(self.wrapper_cfg, optimizer=optimizer), OPTIM_WRAPPERS)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class DeepLabOptimWrapperConstructor(ParamGroupsOptimWrapperConstructor):
    """The constructor building :func:`deeplab_param_groups`; ``paramwise_cfg`` holds
    :class:`GroupRules` fields."""

    def parse_paramwise(self, paramwise_cfg: dict) -> None:
        self.rules = GroupRules.from_cfg(paramwise_cfg)

    def param_groups(self, model: nn.Module, lr: float, weight_decay: float) -> List[dict]:
        return deeplab_param_groups(model, lr, weight_decay, self.rules)
