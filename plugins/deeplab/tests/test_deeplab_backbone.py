"""DeepLabResNet: the reference stride layout, output sizes, frozen BN, weight loading."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from wsss_deeplab.testing import registered, tiny_v2, to_deeplab_pytorch_names  # noqa: F401


@pytest.fixture
def backbone(registered):
    from wsss_deeplab.models.resnet_deeplab import DeepLabResNet
    torch.manual_seed(0)
    return DeepLabResNet(depth='tiny')


def test_reference_output_sizes_for_a_321_crop(registered):
    model = tiny_v2().train()
    outs = model.multi_logits(torch.randn(1, 3, 321, 321))
    assert [tuple(o.shape[-2:]) for o in outs] == [(41, 41), (21, 21), (31, 31), (41, 41)]
    assert model.output_names() == ['x1', 'x0.5', 'x0.75', 'max']
    model.eval()
    assert model.fused_logits(torch.randn(1, 3, 321, 321)).shape == (1, 4, 41, 41)
    assert model(torch.randn(1, 3, 321, 321), mode='predict').shape == (1, 4, 321, 321)


def test_stride_and_dilation_layout_of_every_block(backbone):
    assert backbone.maxpool.ceil_mode
    assert backbone.output_stride == 8
    for stage, stride, dilation in zip(backbone.stages, (1, 2, 1, 1), (1, 1, 2, 4)):
        for j, block in enumerate(stage):
            assert block.conv1.stride == ((stride, stride) if j == 0 else (1, 1))  # Caffe style
            assert block.conv2.stride == (1, 1)
            assert block.conv2.dilation == (dilation, dilation)
            assert block.conv2.padding == (dilation, dilation)
        assert stage[0].downsample is not None


def test_depth_101_has_the_reference_block_counts(registered):
    from wsss_deeplab.models.resnet_deeplab import ARCHS
    assert ARCHS[101] == ((3, 4, 23, 3), 64)


def test_timm_layout_would_give_other_msc_sizes():
    """Why not timm's ResNet: its floor-mode stem pool gives 20x20 / 30x30 for the MSC inputs."""
    from timm.models.resnet import Bottleneck, ResNet
    timm_net = ResNet(Bottleneck, [1, 1, 1, 1], output_stride=8, stem_width=4,
                      channels=(4, 8, 16, 32), num_classes=0, global_pool='')
    sizes = [timm_net.forward_features(torch.randn(1, 3, n, n)).shape[-1] for n in (321, 160, 240)]
    assert sizes == [41, 20, 30]


def test_stride_in_3x3_variant_keeps_the_sizes(registered):
    from wsss_deeplab.models.resnet_deeplab import DeepLabResNet
    net = DeepLabResNet(depth='tiny', stride_in_1x1=False)
    assert net.layer2[0].conv2.stride == (2, 2) and net.layer2[0].conv1.stride == (1, 1)
    assert [net(torch.randn(1, 3, n, n))[-1].shape[-1] for n in (321, 160, 240)] == [41, 21, 31]


def test_output_stride_16_and_low_level_features(registered):
    from wsss_deeplab.models.resnet_deeplab import DeepLabResNet
    net = DeepLabResNet(depth='tiny', output_stride=16, out_indices=(0, 3))
    low, high = net(torch.randn(1, 3, 61, 61))  # stem 31, ceil-mode pool 16
    assert low.shape[-1] == 16 and high.shape[-1] == 4
    assert net.feature_channels == (16, 128)
    assert net.layer4[0].conv2.dilation == (2, 2)


def test_frozen_bn_stays_frozen_in_train_mode(backbone):
    from wsss_deeplab.models.frozen_bn import FrozenBatchNorm2d
    assert not any(isinstance(m, nn.BatchNorm2d) for m in backbone.modules())
    frozen = [m for m in backbone.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert frozen and all(len(list(m.parameters())) == 0 for m in frozen)
    with torch.no_grad():  # non-trivial statistics
        for m in frozen:
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    x = torch.randn(2, 3, 33, 33)
    backbone.eval()
    out_eval = backbone(x)[-1]
    backbone.train()
    out_train = backbone(x)[-1]
    out_train.sum().backward()
    torch.testing.assert_close(out_train, out_eval)
    for k, v in backbone.state_dict().items():
        assert torch.equal(v, before[k]), f'{k} changed in train mode'


def test_frozen_bn_equals_batchnorm_in_eval_and_conversion_keeps_values():
    from wsss_deeplab.models.frozen_bn import FrozenBatchNorm2d, freeze_batch_norm
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(5)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    seq = nn.Sequential(nn.Conv2d(3, 5, 1), bn)
    x = torch.randn(2, 3, 4, 4)
    expected = seq.eval()(x)
    freeze_batch_norm(seq)
    assert isinstance(seq[1], FrozenBatchNorm2d)
    torch.testing.assert_close(seq.train()(x), expected)
    # a BatchNorm state dict (with num_batches_tracked) loads into the frozen layer
    fresh = FrozenBatchNorm2d(5)
    fresh.load_state_dict(bn.state_dict())
    torch.testing.assert_close(fresh(x.new_ones(1, 5, 2, 2)), bn.eval()(x.new_ones(1, 5, 2, 2)))


def test_imagenet_weights_in_torchvision_names_load(tmp_path, registered):
    from wsss_deeplab.models.resnet_deeplab import DeepLabResNet
    torch.manual_seed(1)
    source = DeepLabResNet(depth='tiny', norm='bn', stride_in_1x1=False)
    state = dict(source.state_dict(), **{'fc.weight': torch.zeros(10, 128)})
    path = tmp_path / 'imagenet.pth'
    torch.save(state, path)
    net = DeepLabResNet(depth='tiny', stride_in_1x1=False, pretrained=str(path))
    assert net.load_report['layout'] == 'torchvision/timm'
    assert net.load_report['missing'] == [] and net.load_report['unexpected'] == []
    x = torch.randn(1, 3, 40, 40)
    torch.testing.assert_close(net(x)[-1], source.eval()(x)[-1])


def test_converted_deeplab_pytorch_checkpoint_loads_backbone_and_head(tmp_path, registered):
    torch.manual_seed(2)
    source = tiny_v2(num_classes=4)
    state = to_deeplab_pytorch_names(source.backbone.state_dict())
    for i, conv in enumerate(source.decode_head.convs):
        state[f'base.aspp.c{i}.weight'] = conv.weight.detach().clone()
        state[f'base.aspp.c{i}.bias'] = conv.bias.detach().clone() + 1.0
    path = tmp_path / 'deeplabv1_resnet101-coco.pth'
    torch.save(state, path)
    model = tiny_v2(num_classes=4, init_checkpoint=str(path), load_head=True)
    assert model.init_report['backbone']['missing'] == []
    x = torch.randn(1, 3, 41, 41)
    torch.testing.assert_close(model.backbone(x)[-1], source.backbone(x)[-1])
    torch.testing.assert_close(model.decode_head.convs[2].bias,
                               source.decode_head.convs[2].bias + 1)
    # a head for other classes (COCO) is skipped, the backbone still loads
    other = tiny_v2(num_classes=6, init_checkpoint=str(path), load_head=True)
    assert other.init_report['head'].startswith('skipped')


def test_missing_weight_file_names_the_file(tmp_path, monkeypatch, registered):
    from wsss_core.io import DataFileError
    from wsss_deeplab.models.resnet_deeplab import DeepLabResNet
    missing = tmp_path / 'nowhere' / 'resnet101.pth'
    with pytest.raises(DataFileError, match='resnet101.pth') as err:
        DeepLabResNet(depth='tiny', pretrained=str(missing))
    assert 'set pretrained=None' in str(err.value) and 'checkpoint' not in str(err.value)
    # the option the config used, and the absolute path of a relative one
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataFileError) as err:
        tiny_v2(init_checkpoint='coco.pth')
    assert "init_checkpoint='coco.pth'" in str(err.value)
    assert f"looked at {tmp_path / 'coco.pth'}" in str(err.value)
    assert 'set init_checkpoint=None' in str(err.value)


def test_unrelated_weight_file_is_refused(tmp_path, registered):
    from wsss_deeplab.models.resnet_deeplab import DeepLabResNet
    path = tmp_path / 'other.pth'
    torch.save({'encoder.weight': torch.zeros(3)}, path)
    with pytest.raises(ValueError, match='none of its 1 weights'):
        DeepLabResNet(depth='tiny', pretrained=str(path))


def test_timm_weights_come_from_the_local_cache_only(tmp_path, monkeypatch, registered):
    import huggingface_hub.constants
    from wsss_core.io import DataFileError
    from wsss_deeplab.models.resnet_deeplab import DeepLabResNet
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(tmp_path / 'hf'))
    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path / 'torch_hub'))
    with pytest.raises(DataFileError, match=r"resnet101\.tv_in1k.*not in the local cache"):
        DeepLabResNet(depth=101, stride_in_1x1=False, timm_weights='resnet101.tv_in1k')
