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

from wsss_deeplab.testing import (FACTOR, caffe_names, caffemodel_of,  # noqa: F401
                                  registered, small_caffe_model, tiny_v2)

pytest.importorskip('google.protobuf')

from wsss_core.prepare.convert.state_dict import ConversionError  # noqa: E402
from wsss_core.testing.caffe_proto import make_layer  # noqa: E402

@pytest.fixture
def source(registered):
    model = small_caffe_model()
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
    target = small_caffe_model()
    state = convert_deeplab_caffemodel(path, model=target)
    target.load_state_dict(state, strict=True)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    assert sorted(state) == sorted(source.state_dict())
    trainable_bn = small_caffe_model(norm='bn')          # BatchNorm2d: torch fills the step counter
    trainable_bn.load_state_dict(state, strict=True)
    assert torch.equal(trainable_bn.backbone.bn1.running_mean, source.backbone.bn1.running_mean)


def test_a_file_without_the_aspp_gives_the_backbone(source, tmp_path):
    from wsss_deeplab.convert_caffe import convert_deeplab_caffemodel
    path = tmp_path / 'init.caffemodel'
    caffemodel_of(source, path, head=False,
                  extra=[make_layer('fc1_coco', 'Convolution', [np.ones((91, 8, 1, 1))])])
    target = small_caffe_model()
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
        convert_deeplab_caffemodel(path, model=small_caffe_model(num_classes=21))
    # default model: the full ResNet-101 (built on the meta device): the small file misses keys
    with pytest.raises(ConversionError, match=r'missing backbone\.layer3\.2\.conv1\.weight'):
        convert_deeplab_caffemodel(path)
    caffemodel_of(source, path, eps=1e-3)
    with pytest.raises(ConversionError, match='eps 0.001'):
        convert_deeplab_caffemodel(path, model=small_caffe_model())
    caffemodel_of(source, path, extra=[make_layer('mystery', 'Convolution', [np.ones(2)])])
    with pytest.raises(ConversionError, match='mystery'):
        convert_deeplab_caffemodel(path, model=small_caffe_model())
