"""Backbones: timm adapter (output stride, local weights) and the SmallResNet."""
from __future__ import annotations

import pytest
import torch

from wsss_core.io import DataFileError
from wsss_core.models.cam_classifier import CAMClassifier
from wsss_core.models.small_resnet import SmallResNet
from wsss_core.models.timm_backbone import TimmBackbone



@pytest.mark.parametrize('stride', [8, 16, 32])
def test_timm_backbone_output_stride(stride):
    net = TimmBackbone('resnet18', output_stride=stride).eval()
    out = net(torch.zeros(1, 3, 64, 64))
    assert out.shape == (1, 512, 64 // stride, 64 // stride)
    assert net.out_channels == 512 and net.output_stride == stride


def test_timm_backbone_loads_a_local_file_and_names_a_missing_one(tmp_path):
    torch.manual_seed(0)
    src = TimmBackbone('resnet18', output_stride=16).eval()
    path = tmp_path / 'w.pth'
    torch.save(src.model.state_dict(), path)
    torch.manual_seed(1)
    dst = TimmBackbone('resnet18', output_stride=16, checkpoint=str(path)).eval()
    x = torch.randn(1, 3, 32, 32)
    assert torch.allclose(src(x), dst(x))
    with pytest.raises(DataFileError, match='nope.pth'):
        TimmBackbone('resnet18', checkpoint=str(tmp_path / 'nope.pth'))


def test_cam_classifier_on_a_timm_backbone(core_registered):
    model = CAMClassifier(backbone=dict(type='TimmBackbone', model_name='resnet18',
                                        output_stride=8), num_classes=4).eval()
    img = torch.randn(2, 3, 64, 64)
    assert model.cam_logits(img).shape == (2, 4, 8, 8)
    loss = model(img, labels=torch.tensor([[1., 0, 0, 1], [0, 1, 0, 0]]), mode='loss')['loss_cls']
    loss.backward()
    assert torch.isfinite(loss) and model.classifier.weight.grad is not None


def test_small_resnet_output_stride():
    net = SmallResNet()
    assert net.output_stride == 8
    assert net(torch.zeros(1, 3, 96, 96)).shape == (1, 192, 12, 12)
    assert 0.6e6 < sum(p.numel() for p in net.parameters()) < 0.8e6


# --------------------------------------------------------------- TorchvisionResNet
def test_torchvision_resnet_strides_without_dilation(core_registered):
    from wsss_core.models.torchvision_resnet import TorchvisionResNet
    x = torch.randn(2, 3, 64, 96)
    for os_, size in ((8, (8, 12)), (16, (4, 6)), (32, (2, 3))):
        net = TorchvisionResNet(output_stride=os_).eval()
        assert net.output_stride == os_
        with torch.no_grad():
            assert tuple(net(x).shape) == (2, 2048) + size
        # no dilation anywhere: the irn/MoANA convention, unlike timm's output_stride
        assert all(m.dilation == (1, 1) for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    levels = TorchvisionResNet(output_stride=16, out_indices=(0, 1, 2, 3, 4)).eval()
    with torch.no_grad():
        outs = levels(x)
    assert [o.shape[1] for o in outs] == levels.channels == [64, 256, 512, 1024, 2048]
    assert [64 // o.shape[2] for o in outs] == levels.reductions == [4, 4, 8, 16, 16]


def test_torchvision_resnet_norm_eval_frozen_stem_and_weights(core_registered, tmp_path):
    import torchvision
    from wsss_core.models.torchvision_resnet import TorchvisionResNet
    ref = torchvision.models.resnet50(weights=None)
    torch.save(ref.state_dict(), tmp_path / 'resnet50.pth')
    net = TorchvisionResNet(output_stride=16, pretrained=tmp_path / 'resnet50.pth',
                            norm_eval=True, frozen_stem=True).train()
    assert net.missing_keys == []
    assert torch.equal(net.layer3[2].conv3.weight, ref.layer3[2].conv3.weight)
    assert all(not m.training for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not net.conv1.weight.requires_grad and net.layer1[0].conv1.weight.requires_grad
    running = net.bn1.running_mean.clone()
    net(torch.randn(2, 3, 32, 32)).sum().backward()
    assert torch.equal(net.bn1.running_mean, running)      # BN statistics stay fixed
    assert net.conv1.weight.grad is None and net.layer4[0].conv2.weight.grad is not None
    torch.save({'foo.weight': torch.zeros(3)}, tmp_path / 'other.pth')
    with pytest.raises(DataFileError, match='other.pth'):
        TorchvisionResNet(pretrained=tmp_path / 'other.pth')


def test_torchvision_resnet_width_mult_keeps_names_and_scales_shapes(core_registered):
    """width_mult=1/16: torchvision's keys, every tensor's channel counts divided by 16
    (stem 4, planes 4/8/16/32, outputs 16/32/64/128); the strides are unchanged."""
    import torchvision
    from wsss_core.models.torchvision_resnet import TorchvisionResNet
    full = torchvision.models.resnet101(weights=None).state_dict()
    small = TorchvisionResNet(depth=101, output_stride=8, width_mult=1 / 16,
                              out_indices=(0, 1, 2, 3, 4)).eval()
    state = small.state_dict()
    assert set(state) == set(full) - {'fc.weight', 'fc.bias'}
    for key, value in state.items():
        ref = full[key].shape
        if value.ndim == 4:      # conv: out and in channels / 16, but the RGB input's 3
            cin = 3 if key == 'conv1.weight' else ref[1] // 16
            assert value.shape == (ref[0] // 16, cin) + tuple(ref[2:]), key
        elif value.ndim == 1:
            assert value.shape == (ref[0] // 16,), key
    assert small.channels == [4, 16, 32, 64, 128]
    with torch.no_grad():
        outs = small(torch.randn(1, 3, 64, 96))
    assert [o.shape[1] for o in outs] == small.channels
    assert [64 // o.shape[2] for o in outs] == small.reductions == [4, 4, 8, 8, 8]
    with pytest.raises(ValueError, match='width_mult'):
        TorchvisionResNet(width_mult=1 / 128)


def test_small_resnet_levels_share_the_single_level_weights(core_registered):
    single = SmallResNet(widths=(8, 8, 16, 16)).eval()
    levels = SmallResNet(widths=(8, 8, 16, 16), out_indices=(0, 1, 2, 3, 4)).eval()
    levels.load_state_dict(single.state_dict())          # same parameter names
    x = torch.randn(1, 3, 32, 32)
    outs = levels(x)
    assert [o.shape[1] for o in outs] == levels.channels == [8, 8, 8, 16, 16]
    assert [32 // o.shape[2] for o in outs] == levels.reductions == [2, 2, 4, 8, 8]
    torch.testing.assert_close(outs[-1], single(x))
    with pytest.raises(ValueError, match='out of range'):
        SmallResNet(out_indices=(5,))
