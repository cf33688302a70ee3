"""Shared test set-up: one thread, offline hub, a per-session data cache, tiny data."""
from __future__ import annotations

import os

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
os.environ.setdefault('OMP_NUM_THREADS', '1')

import pytest  # noqa: E402

TINY_GENERATOR = dict(image_size=48, num_classes=3, seed=0, num_train=16, num_val=8)


def pytest_configure(config):
    import torch
    torch.set_num_threads(1)


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
    return dict(type='SyntheticShapes', generator=dict(TINY_GENERATOR), progress=False)


def tiny_pipeline_cfg(data_cfg: dict, epochs: int = 1) -> dict:
    """classify -> cams -> labels -> eval on tiny data with a tiny SmallResNet."""
    return dict(
        seed=0, data=data_cfg,
        stages=[
            dict(type='TrainClassifier', name='classify', max_epochs=epochs, batch_size=8,
                 log_interval=1,
                 model=dict(type='CAMClassifier',
                            backbone=dict(type='SmallResNet', widths=(8, 8, 16, 16)))),
            dict(type='MakeCAMs', name='cams', source='classify', split='train',
                 scales=(1.0, 0.5), flip=True, batch_size=4),
            dict(type='RefineLabels', name='labels', cams='cams'),
            dict(type='EvaluateLabels', name='eval_labels', labels='labels'),
        ])
