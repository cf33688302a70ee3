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

import numpy as np  # noqa: E402
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
    from wsss_core.plugin_loader import load_plugins
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


# ----------------------------------------------------------------------------- .caffemodel
# A small DeepLabV2 written as the authors' DeepLab v2 ResNet-101 .caffemodel would hold it
# (the converter's tests and wsss-prepare's): ResNet stages of 3, 4, 2, 3 blocks, base width
# 2, so that both of Caffe's unit spellings occur (res2a/res2b/res2c, res3a/res3b1/...).
LAYERS = (3, 4, 2, 3)
#: Caffe's unit names per stage for these block counts (the ResNet-101 prototxt uses letters
#: in stages 2 and 5 and a, b1, b2, ... in stages 3 and 4)
UNITS = {2: ['a', 'b', 'c'], 3: ['a', 'b1', 'b2', 'b3'], 4: ['a', 'b1'], 5: ['a', 'b', 'c']}
BRANCH = {'1': '2a', '2': '2b', '3': '2c'}
#: the BatchNorm scale factor stored in the file: a power of two, so sum / s is exact
FACTOR = 1024.0


def small_caffe_model(num_classes=3, norm='frozen'):
    return tiny_v2(num_classes, msc_scales=(),
                   backbone=dict(type='DeepLabResNet', depth=101, layers=LAYERS, base_width=2,
                                 norm=norm))


def caffe_names(key: str):
    """(layer name of the weight / mean-var, of gamma-beta) for one of our module paths."""
    if key == 'conv1':
        return 'conv1', None
    if key == 'bn1':
        return 'bn_conv1', 'scale_conv1'
    stage, block, rest = key.split('.', 2)
    unit = f'{int(stage[5:]) + 1}{UNITS[int(stage[5:]) + 1][int(block)]}'
    if rest.startswith('downsample'):
        branch, is_bn = '1', rest.endswith('1')
    else:
        branch, is_bn = BRANCH[rest[-1]], rest.startswith('bn')
    if is_bn:
        return f'bn{unit}_branch{branch}', f'scale{unit}_branch{branch}'
    return f'res{unit}_branch{branch}', None


def caffemodel_of(model, path, head=True, extra=(), eps=None):
    """Write ``model``'s weights as the authors' .caffemodel would hold them (protobuf from
    the test extra builds the file)."""
    from wsss_core.testing.caffe_proto import make_layer, write_caffemodel
    state = model.state_dict()
    layers = [make_layer('data', 'Input')]
    backbone = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    modules = sorted({k.rsplit('.', 1)[0] for k in backbone})
    for module in modules:
        name, scale_name = caffe_names(module)
        if scale_name is None:
            layers.append(make_layer(name, 'Convolution', [backbone[f'{module}.weight'].numpy()]))
            continue
        mean = backbone[f'{module}.running_mean'].numpy() * FACTOR
        var = backbone[f'{module}.running_var'].numpy() * FACTOR
        layers.append(make_layer(name, 'BatchNorm', [mean, var, np.array([FACTOR])], eps=eps))
        layers.append(make_layer(scale_name, 'Scale', [backbone[f'{module}.weight'].numpy(),
                                                         backbone[f'{module}.bias'].numpy()]))
        layers.append(make_layer(name.replace('bn', 'relu', 1), 'ReLU'))
    if head:
        for i in range(4):
            layers.append(make_layer(f'fc1_voc12_c{i}', 'Convolution', [
                state[f'decode_head.convs.{i}.weight'].numpy(),
                state[f'decode_head.convs.{i}.bias'].numpy()]))
    # the multi-scale copies of the training net share the weights: other values here,
    # so that taking them instead would show
    layers.append(make_layer('conv1_res075', 'Convolution', [np.zeros((1, 1, 1, 1))]))
    layers.append(make_layer('fc1_voc12_c0_res05', 'Convolution', [np.zeros((1, 1, 1, 1))]))
    layers.extend(extra)
    write_caffemodel(path, layers)
