"""EDAM's optimiser groups (x1 backbone, x10 new layers, x1 transformer, decay on all) and
its warm-up + poly schedule, as the mmengine objects a run builds."""
from __future__ import annotations

import pytest
import torch

from wsss_edam.testing import registered  # noqa: F401 (fixture)

LR, WD = 1e-3, 5e-4


def tiny_edam():
    from wsss_core.registry import MODELS, build
    torch.manual_seed(0)
    return build(dict(type='EDAMClassifier', num_classes=3,
                      backbone=dict(type='SmallResNet', widths=(8, 8, 16, 16))), MODELS)


def build_wrapper(model, **paramwise):
    from wsss_core.registry import OPTIM_WRAPPER_CONSTRUCTORS, build
    ctor = build(dict(type='EDAMOptimWrapperConstructor', paramwise_cfg=paramwise or None,
                      optim_wrapper_cfg=dict(optimizer=dict(type='SGD', lr=LR, momentum=0.9,
                                                            weight_decay=WD))),
                 OPTIM_WRAPPER_CONSTRUCTORS)
    return ctor(model)


def test_groups_lr_multipliers_and_decay(registered):
    model = tiny_edam()
    groups = {g['name']: g for g in build_wrapper(model).optimizer.param_groups}
    assert {k: g['lr'] for k, g in groups.items()} == pytest.approx(
        dict(backbone=LR, new=10 * LR, transformer=LR))
    assert all(g['weight_decay'] == WD for g in groups.values())
    ids = {k: {id(p) for p in g['params']} for k, g in groups.items()}
    assert id(model.da.conv.weight) in ids['new']
    assert all(id(p) in ids['backbone'] for p in model.backbone.parameters())
    covered = set().union(*ids.values())
    assert covered == {id(p) for p in model.parameters() if p.requires_grad}
    changed = {g['name']: g['lr'] for g in
               build_wrapper(model, lr_mults=dict(new=5.0)).optimizer.param_groups}
    assert changed['new'] == pytest.approx(5 * LR)
    with pytest.raises(TypeError, match='unknown EDAM paramwise_cfg'):
        build_wrapper(model, head_lr_mult=3)


def test_warmup_then_poly_follows_the_reference_formula(registered):
    from wsss_edam.optim.edam_optim import warmup_poly_schedule
    from wsss_core.registry import PARAM_SCHEDULERS, build
    total, warm = 50, 10
    wrapper = build_wrapper(tiny_edam())
    scheds = [build(dict(c), PARAM_SCHEDULERS, optimizer=wrapper)
              for c in warmup_poly_schedule(total, warm)]
    seen = []
    for step in range(total):
        seen.append(wrapper.optimizer.param_groups[0]['lr'])
        wrapper.step()
        for s in scheds:
            s.step()
    for s in (0, 5, 9):        # warm-up: lr (0.1 + 0.9 s / W)
        assert seen[s] == pytest.approx(LR * (0.1 + 0.9 * s / warm), rel=1e-6)
    for s in (10, 30, 49):     # poly over the remaining steps
        assert seen[s] == pytest.approx(LR * (1 - (s - warm) / (total - warm)) ** 0.9, rel=1e-6)
