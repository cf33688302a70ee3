"""Test helpers of the DeepLab plugin: tiny models with the reference strides, fixtures.

For tests only: importing this module prepares the process the way the test suite needs
(one thread, offline hub, generated data in a temporary ``WSSS_CACHE`` removed at exit).
It lives in the package, not in a ``conftest.py``, so that the plugin's tests can be
collected in one pytest session with the core's (whose tests import their own
``conftest``) and under any import mode.
"""
from __future__ import annotations

from wsss_core.testing import isolate_test_process, tiny_classify_stage, tiny_data_cfg

isolate_test_process('wsss_deeplab_tests_')  # before torch is imported

import pytest  # noqa: E402
import torch  # noqa: E402

__all__ = ['TINY_BACKBONE', 'TINY_GENERATOR', 'registered', 'tiny_segmentation_pipeline',
           'tiny_v2',
           'to_deeplab_pytorch_names']

TINY_BACKBONE = dict(type='DeepLabResNet', depth='tiny')
TINY_GENERATOR = dict(image_size=48, num_classes=3, seed=0, num_train=16, num_val=8)


@pytest.fixture(scope='session')
def registered():
    """The core and this plugin loaded through the plugin loader (as wsss-run does)."""
    from wsss_core.plugins import load_plugins
    plugins = load_plugins(enabled=['deeplab'])
    assert plugins['deeplab'].status == 'ok', plugins['deeplab'].reason
    return plugins


def tiny_v2(num_classes: int = 4, **kwargs):
    """A DeepLabV2 with one block per stage, base width 4, the reference strides and MSC."""
    from wsss_core.registry import MODELS, build
    cfg = dict(type='DeepLabV2', num_classes=num_classes, backbone=dict(TINY_BACKBONE))
    cfg.update(kwargs)
    torch.manual_seed(0)
    return build(cfg, MODELS)


def to_deeplab_pytorch_names(state: dict) -> dict:
    """Rename our backbone state dict to deeplab-pytorch's names (the inverse mapping)."""
    parts = {'conv1': ('reduce', 'conv'), 'bn1': ('reduce', 'bn'), 'conv2': ('conv3x3', 'conv'),
             'bn2': ('conv3x3', 'bn'), 'conv3': ('increase', 'conv'), 'bn3': ('increase', 'bn'),
             'downsample.0': ('shortcut', 'conv'), 'downsample.1': ('shortcut', 'bn')}
    out = {}
    for key, value in state.items():
        if key.startswith('conv1.'):
            out['base.layer1.conv1.conv.' + key[6:]] = value
        elif key.startswith('bn1.'):
            out['base.layer1.conv1.bn.' + key[4:]] = value
        else:
            stage, block, rest = key.split('.', 2)
            for ours, (part, kind) in parts.items():
                if rest.startswith(ours + '.'):
                    tail = rest[len(ours) + 1:]
                    out[f'base.layer{int(stage[5:]) + 1}.block{int(block) + 1}.{part}.{kind}.'
                        f'{tail}'] = value
                    break
            else:
                raise KeyError(key)
    return out


def tiny_segmentation_pipeline(segmentor: dict, test: dict) -> dict:
    """classify -> CAMs -> labels -> TrainSegmentor -> TestSegmentor on tiny SyntheticShapes,
    a tiny DeepLabV2; ``segmentor`` / ``test`` are the two stages' own options."""
    return dict(
        seed=0,
        data=tiny_data_cfg(),
        stages=[
            tiny_classify_stage(val_split=None),
            dict(type='MakeCAMs', name='cams', source='classify', scales=(1.0,), flip=False),
            dict(type='RefineLabels', name='labels', cams='cams'),
            dict(type='TrainSegmentor', name='deeplab', labels='labels',
                 model=dict(type='DeepLabV2', backbone=dict(TINY_BACKBONE)), **segmentor),
            dict(type='TestSegmentor', name='test', checkpoint='deeplab', split='val', **test),
        ])
