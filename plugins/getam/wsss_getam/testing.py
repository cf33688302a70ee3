"""Test helpers of the GETAM plugin: the plugins loaded as wsss-run loads them.

For tests only: importing this module prepares the process the way the test suite needs
(one thread, offline hub, generated data in a temporary ``WSSS_CACHE`` removed at exit).
"""
from __future__ import annotations

from wsss_core.testing import isolate_test_process

isolate_test_process('wsss_getam_tests_')  # before torch is imported

import pytest  # noqa: E402

__all__ = ['registered']


@pytest.fixture(scope='session')
def registered():
    """The core and the DeepLab and GETAM plugins loaded through the plugin loader."""
    from wsss_core.plugin_loader import load_plugins
    plugins = load_plugins(enabled=['deeplab', 'getam'])
    assert plugins['getam'].status == 'ok', plugins['getam'].reason
    return plugins

TINY_GENERATOR = dict(image_size=64, num_classes=3, seed=0, num_train=16, num_val=8)
__all__.append('TINY_GENERATOR')
