"""DeepLab v2 .caffemodel -> DeepLabV2: a protobuf-built file in the authors' layer naming.

The file is made from a small DeepLabV2 (ResNet stages of 3, 4, 2, 3 blocks, base width 2:
the block counts exercise both of Caffe's unit spellings, res2a/res2b/res2c and
res3a/res3b1/...) through the naming of the released DeepLab v2 ResNet-101 prototxt, written
out by hand below; converting it back must give the very tensors it was made from.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from wsss_deeplab.testing import registered, tiny_v2  # noqa: F401

pytest.importorskip('google.protobuf')

from wsss_core.prepare.convert.state_dict import ConversionError  # noqa: E402
from wsss_core.testing.caffe_proto import make_layer, write_caffemodel  # noqa: E402

LAYERS = (3, 4, 2, 3)
#: Caffe's unit names per stage for these block counts (the ResNet-101 prototxt uses letters
#: in stages 2 and 5 and a, b1, b2, ... in stages 3 and 4)
UNITS = {2: ['a', 'b', 'c'], 3: ['a', 'b1', 'b2', 'b3'], 4: ['a', 'b1'], 5: ['a', 'b', 'c']}
BRANCH = {'1': '2a', '2': '2b', '3': '2c'}
#: the BatchNorm scale factor stored in the file: a power of two, so sum / s is exact
FACTOR = 1024.0


def small_model(num_classes=3, norm='frozen'):
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
    """Write ``model``'s weights as the authors' .caffemodel would hold them."""
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


@pytest.fixture
def source(registered):
    model = small_model()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for key, value in model.state_dict().items():   # every value distinct, var > 0
            value.copy_(torch.rand(value.shape, generator=generator) + 0.5)
    return model


def test_caffe_names_map_to_deeplab_pytorch_modules():
    from wsss_deeplab.convert_caffe import caffe_module_name
    assert caffe_module_name('conv1') == 'layer1.conv1.conv'
    assert caffe_module_name('scale_conv1') == 'layer1.conv1.bn'
    assert caffe_module_name('res2c_branch2b') == 'layer2.block3.conv3x3.conv'
    assert caffe_module_name('bn4b22_branch2a') == 'layer4.block23.reduce.bn'
    assert caffe_module_name('scale5a_branch1') == 'layer5.block1.shortcut.bn'
    assert caffe_module_name('fc1_voc12_c3') == 'aspp.c3'
    assert caffe_module_name('res4x1_branch2a') is None


def test_converted_caffemodel_loads_strictly_with_the_same_tensors(source, tmp_path):
    from wsss_deeplab.convert_caffe import convert_deeplab_caffemodel
    path = tmp_path / 'train2_iter_20000.caffemodel'
    caffemodel_of(source, path)
    target = small_model()
    state = convert_deeplab_caffemodel(path, model=target)
    target.load_state_dict(state, strict=True)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    assert sorted(state) == sorted(source.state_dict())
    trainable_bn = small_model(norm='bn')          # BatchNorm2d: torch fills the step counter
    trainable_bn.load_state_dict(state, strict=True)
    assert torch.equal(trainable_bn.backbone.bn1.running_mean, source.backbone.bn1.running_mean)


def test_a_file_without_the_aspp_gives_the_backbone(source, tmp_path):
    from wsss_deeplab.convert_caffe import convert_deeplab_caffemodel
    path = tmp_path / 'init.caffemodel'
    caffemodel_of(source, path, head=False,
                  extra=[make_layer('fc1_coco', 'Convolution', [np.ones((91, 8, 1, 1))])])
    target = small_model()
    state = convert_deeplab_caffemodel(path, model=target)
    assert state and all(k.startswith('backbone.') for k in state)
    target.backbone.load_state_dict({k[len('backbone.'):]: v for k, v in state.items()},
                                    strict=True)
    assert torch.equal(target.backbone.layer3[1].bn2.running_var,
                       source.backbone.layer3[1].bn2.running_var)


def test_mismatches_are_named(source, tmp_path):
    from wsss_deeplab.convert_caffe import convert_deeplab_caffemodel
    path = tmp_path / 'a.caffemodel'
    caffemodel_of(source, path)
    with pytest.raises(ConversionError, match=r'decode_head\.convs\.0\.weight: converted '
                                              r'\(3, 64, 3, 3\) vs model \(21, 64, 3, 3\)'):
        convert_deeplab_caffemodel(path, model=small_model(num_classes=21))
    # default model: the full ResNet-101 (built on the meta device): the small file misses keys
    with pytest.raises(ConversionError, match=r'missing backbone\.layer3\.2\.conv1\.weight'):
        convert_deeplab_caffemodel(path)
    caffemodel_of(source, path, eps=1e-3)
    with pytest.raises(ConversionError, match='eps 0.001'):
        convert_deeplab_caffemodel(path, model=small_model())
    caffemodel_of(source, path, extra=[make_layer('mystery', 'Convolution', [np.ones(2)])])
    with pytest.raises(ConversionError, match='mystery'):
        convert_deeplab_caffemodel(path, model=small_model())
