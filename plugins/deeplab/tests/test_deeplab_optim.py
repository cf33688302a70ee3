"""Parameter groups (lr x1 / x10 / x20, no decay on head biases) and the poly schedule."""
from __future__ import annotations

import pytest
import torch
from mmengine.registry import DefaultScope

from wsss_deeplab.testing import registered, tiny_v2  # noqa: F401 (fixture)

LR, WD = 2.5e-4, 5e-4


def build_wrapper(model, **paramwise):
    from mmengine.optim import build_optim_wrapper
    cfg = dict(type='OptimWrapper', accumulative_counts=2,
               optimizer=dict(type='SGD', lr=LR, momentum=0.9, weight_decay=WD),
               constructor='DeepLabOptimWrapperConstructor', paramwise_cfg=paramwise or None)
    with DefaultScope.overwrite_default_scope('wsss_core'):  # as inside a Runner
        return build_optim_wrapper(model, cfg)


def test_reference_groups_lr_multipliers_and_weight_decay(registered):
    model = tiny_v2()
    wrapper = build_wrapper(model)
    groups = {g['name']: g for g in wrapper.optimizer.param_groups}
    assert list(groups) == ['backbone', 'head_weight', 'head_bias']
    assert groups['backbone']['lr'] == pytest.approx(LR)
    assert groups['head_weight']['lr'] == pytest.approx(10 * LR)
    assert groups['head_bias']['lr'] == pytest.approx(20 * LR)
    assert groups['backbone']['weight_decay'] == pytest.approx(WD)
    assert groups['head_weight']['weight_decay'] == pytest.approx(WD)
    assert groups['head_bias']['weight_decay'] == 0.0
    assert all(g['momentum'] == 0.9 for g in groups.values())
    convs = [m for m in model.backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    assert {id(p) for p in groups['backbone']['params']} == {id(m.weight) for m in convs}
    head = model.decode_head.convs
    assert {id(p) for p in groups['head_weight']['params']} == {id(c.weight) for c in head}
    assert {id(p) for p in groups['head_bias']['params']} == {id(c.bias) for c in head}
    n_grouped = sum(len(g['params']) for g in groups.values())
    assert n_grouped == len(list(model.parameters()))  # frozen BN adds no parameters
    assert wrapper._accumulative_counts == 2


def test_paramwise_cfg_overrides_and_rejects_unknown_keys(registered):
    model = tiny_v2()
    groups = {g['name']: g for g in build_wrapper(model, head_lr_mult=5.0,
                                                  head_bias_decay_mult=1.0).optimizer.param_groups}
    assert groups['head_weight']['lr'] == pytest.approx(5 * LR)
    assert groups['head_bias']['weight_decay'] == pytest.approx(WD)
    with pytest.raises(TypeError, match='head_lr_mul'):
        build_wrapper(model, head_lr_mul=5.0)


def test_trainable_bn_backbone_gets_a_bias_group(registered):
    from wsss_core.registry import MODELS, build
    model = build(dict(type='DeepLabV2', num_classes=3,
                       backbone=dict(type='DeepLabResNet', depth='tiny', norm='bn')), MODELS)
    groups = {g['name']: g for g in build_wrapper(model).optimizer.param_groups}
    assert groups['backbone_bias']['lr'] == pytest.approx(LR)
    bn = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(groups['backbone_bias']['params']) == 2 * len(bn)


def test_weight_rule_by_name_puts_norm_scales_with_the_weights(registered):
    from wsss_core.optim.param_groups import GroupRules, deeplab_param_groups
    from wsss_core.registry import MODELS, build
    model = build(dict(type='DeepLabV2', num_classes=3,
                       backbone=dict(type='DeepLabResNet', depth='tiny', norm='bn')), MODELS)
    bn = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    by_name = {g['name']: {id(p) for p in g['params']}
               for g in deeplab_param_groups(model, LR, rules=GroupRules(weight_rule='name'))}
    assert all(id(m.weight) in by_name['backbone'] for m in bn)
    assert all(id(m.bias) in by_name['backbone_bias'] for m in bn)
    by_ndim = {g['name']: {id(p) for p in g['params']}
               for g in deeplab_param_groups(model, LR, rules=GroupRules())}
    assert all(id(m.weight) in by_ndim['backbone_bias'] for m in bn)
    with pytest.raises(ValueError, match='weight_rule'):
        GroupRules.from_cfg(dict(weight_rule='size'))


def run_schedule(sched_cfg, its):
    """lr of every group at each 0-based iteration in ``its`` (as the Runner steps it)."""
    from wsss_core.registry import PARAM_SCHEDULERS, build
    model = tiny_v2()
    wrapper = build_wrapper(model)
    scheds = [build(dict(c), PARAM_SCHEDULERS, optimizer=wrapper) for c in sched_cfg]
    seen = {}
    for it in range(max(its) + 1):
        if it in its:
            seen[it] = [g['lr'] for g in wrapper.optimizer.param_groups]
        wrapper.step()
        for s in scheds:
            s.step()
    return seen


def test_poly_schedule_matches_the_formula(registered):
    from wsss_core.optim.poly_schedule import poly_schedule
    max_iters = 100
    seen = run_schedule(poly_schedule(max_iters), (0, 1, 10, 50, 99))
    for it, lrs in seen.items():
        factor = (1 - it / max_iters) ** 0.9
        assert lrs == pytest.approx([LR * factor, 10 * LR * factor, 20 * LR * factor],
                                    rel=1e-9), it


def test_stepped_poly_keeps_the_lr_for_ten_iterations(registered):
    from wsss_core.optim.poly_schedule import poly_lr, poly_schedule
    seen = run_schedule(poly_schedule(100, interval=10), (0, 9, 10, 15, 19, 20, 99))
    for it, lrs in seen.items():
        assert lrs[0] == pytest.approx(poly_lr(LR, it, 100, interval=10), rel=1e-12), it
    assert seen[9][0] == LR
    assert seen[15][0] == seen[10][0] == pytest.approx(LR * 0.9 ** 0.9)
    assert seen[20][0] < seen[19][0]
