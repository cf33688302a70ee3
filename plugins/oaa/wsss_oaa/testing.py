"""Test helpers of the OAA plugin: tiny models and the plugin loaded as wsss-run loads it.

For tests only: importing this module prepares the process the way the test suite needs
(one thread, offline hub, generated data in a temporary ``WSSS_CACHE`` removed at exit).
"""
from __future__ import annotations

from wsss_core.testing import isolate_test_process

isolate_test_process('wsss_oaa_tests_')  # before torch is imported

import pytest  # noqa: E402
import torch  # noqa: E402

__all__ = ['TINY_BACKBONE', 'TINY_GENERATOR', 'oaa_param_groups', 'registered',
           'tiny_oaa_classifier']

#: VGG16OAA with every width divided by 16 (4..32 channels): same strides and layout
TINY_BACKBONE = dict(type='VGG16OAA', width_mult=1 / 16)
TINY_GENERATOR = dict(image_size=48, num_classes=3, seed=0, num_train=16, num_val=8)


@pytest.fixture(scope='session')
def registered():
    """The core, the DeepLab plugin and this plugin loaded through the plugin loader."""
    from wsss_core.plugin_loader import load_plugins
    plugins = load_plugins(enabled=['deeplab', 'oaa'])
    assert plugins['oaa'].status == 'ok', plugins['oaa'].reason
    return plugins


def tiny_oaa_classifier(num_classes: int = 3, **kwargs):
    """An OAAClassifier on the tiny VGG16OAA with a 16-channel head (seeded init)."""
    from wsss_core.registry import MODELS, build
    cfg = dict(type='OAAClassifier', num_classes=num_classes, backbone=dict(TINY_BACKBONE),
               head_channels=16)
    cfg.update(kwargs)
    torch.manual_seed(0)
    return build(cfg, MODELS)


def oaa_param_groups(model) -> dict:
    """``{group name: param group}`` of the reference optimiser (SGD nesterov 1e-3, wd 5e-4,
    OAA's x1 / x2 / x10 / x20) built for ``model`` as a run builds it."""
    from wsss_core.registry import OPTIM_WRAPPER_CONSTRUCTORS, build
    from wsss_oaa.models.oaa_classifier import OAA_PARAMWISE_CFG
    ctor = build(dict(type='DeepLabOptimWrapperConstructor', paramwise_cfg=OAA_PARAMWISE_CFG,
                      optim_wrapper_cfg=dict(optimizer=dict(
                          type='SGD', lr=1e-3, momentum=0.9, nesterov=True,
                          weight_decay=5e-4))), OPTIM_WRAPPER_CONSTRUCTORS)
    return {g['name']: g for g in ctor(model).optimizer.param_groups}
