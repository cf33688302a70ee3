"""Shared test set-up: one thread, offline hub, a per-session data cache, tiny data."""
from __future__ import annotations

import os

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
os.environ.setdefault('OMP_NUM_THREADS', '1')

import pytest  # noqa: E402

from wsss_core.testing import tiny_data_cfg as _tiny_data_cfg  # noqa: E402


def pytest_configure(config):
    import torch
    torch.set_num_threads(1)
    try:   # property-based tests: reproducible in CI, no example database written to the tree
        from hypothesis import settings
    except ImportError:   # the 'test' extra is not installed
        return
    settings.register_profile('wsss', derandomize=True, deadline=None, database=None)
    settings.load_profile(os.environ.get('HYPOTHESIS_PROFILE', 'wsss'))


@pytest.fixture(scope='session', autouse=True)
def _cache_dir(tmp_path_factory):
    """Keep generated data sets out of the user's cache (and shared within the session)."""
    old = os.environ.get('WSSS_CACHE')
    os.environ['WSSS_CACHE'] = str(tmp_path_factory.mktemp('wsss_cache'))
    yield
    if old is None:
        os.environ.pop('WSSS_CACHE', None)
    else:
        os.environ['WSSS_CACHE'] = old


@pytest.fixture(scope='session')
def core_registered():
    """Register the core components once (what wsss-run does through the plugin loader)."""
    from wsss_core.components import register_core_components
    register_core_components()


@pytest.fixture
def tiny_data_cfg(core_registered):
    """A SyntheticShapes data config small enough for plumbing tests (no accuracy asserted)."""
    return _tiny_data_cfg()
