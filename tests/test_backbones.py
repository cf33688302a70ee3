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
