"""MoANA's classifier and the backbones it goes into
(``docs/methods/moana.md#3-where-the-block-goes``)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from wsss_moana.testing import registered  # noqa: F401 (fixture)


def tiny_classifier(**kw):
    from wsss_moana.models.moana_classifier import MoANAClassifier
    backbone = dict(type='WithMoANA', backbone=dict(type='SmallResNet', widths=(8, 8, 16, 16)),
                    moana=dict(preset='wsol'))
    return MoANAClassifier(backbone=backbone, num_classes=4, **kw)


def test_resnet50_with_moana_at_both_output_strides(registered):
    from wsss_moana.models.moana_block import WithMoANA
    x = torch.randn(2, 3, 96, 96)
    for os_, preset in ((8, 'wsol'), (16, 'wsss')):
        net = WithMoANA(backbone=dict(type='TorchvisionResNet', output_stride=os_),
                        moana=dict(preset=preset)).eval()
        with torch.no_grad():
            assert net(x).shape == (2, 2048, 96 // os_, 96 // os_)
        assert net.moana.channels == 2048 and net.output_stride == os_


def test_cross_entropy_loss_and_cam_bias(registered):
    torch.manual_seed(0)
    model = tiny_classifier(loss='cross_entropy', cam_bias=True).eval()
    with torch.no_grad():
        model.classifier.bias.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0]))
    img = torch.randn(2, 3, 32, 32)
    labels = F.one_hot(torch.tensor([2, 0]), 4).float()
    loss = model(img, labels, mode='loss')['loss_cls']
    torch.testing.assert_close(loss, F.cross_entropy(model.logits(img), torch.tensor([2, 0])))
    # logits = GAP of the biased class maps (the WSOL network's order: classifier, then GAP)
    torch.testing.assert_close(model.logits(img), model.cam_logits(img).mean(dim=(2, 3)),
                               rtol=1e-5, atol=1e-5)
    no_bias = tiny_classifier(cam_bias=False).eval()
    no_bias.load_state_dict(model.state_dict())
    diff = model.cam_logits(img) - no_bias.cam_logits(img)
    torch.testing.assert_close(diff, model.classifier.bias.view(1, 4, 1, 1).expand_as(diff))
    with pytest.raises(ValueError, match='exactly one class'):
        model(img, torch.ones(2, 4), mode='loss')


def test_multilabel_loss_is_the_default_and_gradients_reach_moana(registered):
    model = tiny_classifier().train()
    labels = torch.tensor([[1., 0., 1., 0.], [0., 1., 0., 0.]])
    loss = model(torch.randn(2, 3, 32, 32), labels, mode='loss')['loss_cls']
    loss.backward()
    assert model.backbone.moana.conv_h.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='loss must be'):
        tiny_classifier(loss='focal')


def test_vgg16_and_inception_cam_backbones(registered, tmp_path):
    import torchvision
    from wsss_moana.models.cam_backbones import InceptionV3CAM, VGG16CAM
    ref = torchvision.models.vgg16(weights=None)
    torch.save(ref.state_dict(), tmp_path / 'vgg16.pth')
    vgg = VGG16CAM(pretrained=tmp_path / 'vgg16.pth').eval()
    assert vgg.missing_keys == ['conv6.weight', 'conv6.bias']
    assert torch.equal(vgg.features[28].weight, ref.features[28].weight)   # conv5_3
    with torch.no_grad():
        assert vgg(torch.randn(1, 3, 64, 64)).shape == (1, 1024, 8, 8)     # stride 8
        assert VGG16CAM(large_feature_map=False)(torch.randn(1, 3, 64, 64)).shape == \
            (1, 1024, 4, 4)
        inc = InceptionV3CAM().eval()
        out = inc(torch.randn(1, 3, 160, 160))
    assert out.shape[:2] == (1, 1024) and out.shape[2] == 8    # Mixed_6e: about stride 16
