"""Test helpers of the NSROM plugin: the plugins loaded as wsss-run loads them, tiny data.

For tests only: importing this module prepares the process the way the test suite needs
(one thread, offline hub, generated data in a temporary ``WSSS_CACHE`` removed at exit).
"""
from __future__ import annotations

from wsss_core.testing import isolate_test_process

isolate_test_process('wsss_nsrom_tests_')  # before torch is imported

import pytest  # noqa: E402

__all__ = ['TINY_BACKBONE', 'TINY_GENERATOR', 'registered']

#: VGG16OAA with every width divided by 16 (4..32 channels): same strides and layout
TINY_BACKBONE = dict(type='VGG16OAA', width_mult=1 / 16)
TINY_GENERATOR = dict(image_size=48, num_classes=3, seed=0, num_train=16, num_val=8)


@pytest.fixture(scope='session')
def registered():
    """The core and the DeepLab, OAA and NSROM plugins loaded through the plugin loader."""
    from wsss_core.plugin_loader import load_plugins
    plugins = load_plugins(enabled=['deeplab', 'oaa', 'nsrom'])
    assert plugins['nsrom'].status == 'ok', plugins['nsrom'].reason
    return plugins
