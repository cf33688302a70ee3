"""OAA's classifier: strides and shapes of VGG16OAA, ImageNet weight loading, the head,
the pooling/loss relation, the lr groups x1 / x2 / x10 / x20 and backbone swapping."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from wsss_oaa.testing import registered, tiny_oaa_classifier  # noqa: F401 (fixture)


def _build(cfg):
    from wsss_core.registry import MODELS, build
    return build(cfg, MODELS)


def test_vgg16_oaa_from_scratch_keeps_its_signal_through_13_convs(registered):
    """torchvision's VGG init (He, fan-out; biases 0): a VGG16 without normalisation trained
    from scratch (the ShapeCorpus stand-in) must not start with the vanishing output of
    PyTorch's default Conv2d init (std about 0.01 after 13 convs, against about 0.2)."""
    torch.manual_seed(0)
    net = _build(dict(type='VGG16OAA', width_mult=0.25))
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    fan_out = convs[5].out_channels * 9
    assert abs(convs[5].weight.std().item() - math.sqrt(2 / fan_out)) < 0.1 * math.sqrt(2 / fan_out)
    assert all(not c.bias.detach().any() for c in convs)
    out = net(torch.randn(4, 3, 64, 64))
    assert out.std().item() > 0.1
    for conv in convs:                                   # PyTorch's default init, for contrast
        conv.reset_parameters()
    assert net(torch.randn(4, 3, 64, 64)).std().item() < 0.03


def test_vgg16_oaa_has_stride_8_dilated_conv5_and_torchvision_indices(registered):
    net = _build(dict(type='VGG16OAA'))
    convs = {i: m for i, m in enumerate(net.features) if isinstance(m, nn.Conv2d)}
    assert sorted(convs) == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]   # torchvision's
    assert all(convs[i].dilation == (2, 2) and convs[i].padding == (2, 2) for i in (24, 26, 28))
    assert all(convs[i].dilation == (1, 1) for i in convs if i < 24)
    pool4 = net.features[23]
    assert isinstance(pool4, nn.MaxPool2d) and pool4.stride == 1 and pool4.kernel_size == 3
    assert len(net.features) == 30                       # pool5 removed
    assert net.out_channels == 512 and net.output_stride == 8


def test_classifier_cam_shape_matches_the_reference_for_a_resized_voc_image(registered):
    # a 500x375 image resized to 299x224 gives a 37x28 CAM
    # (docs/methods/oaa.md#22-classifier-architecture)
    tiny = tiny_oaa_classifier(num_classes=20)
    with torch.no_grad():
        cam = tiny.cam_logits(torch.zeros(1, 3, 224, 299))
    assert cam.shape == (1, 20, 28, 37)


def test_imagenet_weights_load_from_a_torchvision_style_file(registered, tmp_path):
    from torchvision.models.vgg import cfgs, make_layers
    ref = nn.Module()
    ref.features = make_layers(cfgs['D'])   # torchvision's VGG16 conv part, random weights
    state = dict(ref.state_dict(), **{'classifier.0.weight': torch.zeros(8, 8)})
    path = tmp_path / 'vgg16.pth'
    torch.save(state, path)
    net = _build(dict(type='VGG16OAA', pretrained=str(path)))
    for i in (0, 14, 28):
        assert torch.equal(net.features[i].weight, ref.features[i].weight)
    # pool4 stride 1 + dilated conv5: same weights, a feature map twice as large as VGG16's
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert net(x).shape == (1, 512, 8, 8)
        assert ref.features[:30](x).shape == (1, 512, 4, 4)


def test_missing_or_foreign_weight_file_is_an_error_naming_it(registered, tmp_path):
    from wsss_core.io import DataFileError
    with pytest.raises(DataFileError, match=r"pretrained='.*nothing\.pth'.*pretrained=None"):
        _build(dict(type='VGG16OAA', pretrained=str(tmp_path / 'nothing.pth')))
    other = tmp_path / 'resnet.pth'
    torch.save({'conv1.weight': torch.zeros(64, 3, 7, 7)}, other)
    with pytest.raises(DataFileError, match='resnet.pth.*not a VGG16'):
        _build(dict(type='VGG16OAA', pretrained=str(other)))


def test_head_is_three_relu_convs_then_a_biased_1x1_with_small_normal_init(registered):
    model = _build(dict(type='OAAClassifier', num_classes=20, backbone=dict(type='VGG16OAA')))
    head = model.classifier
    convs = [m for m in head if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(3, 3)] * 3 + [(1, 1)]
    assert [c.out_channels for c in convs] == [512, 512, 512, 20]
    assert sum(isinstance(m, nn.ReLU) for m in head) == 3 and not isinstance(head[-1], nn.ReLU)
    assert all(c.bias is not None and not c.bias.any() for c in convs)
    assert abs(convs[0].weight.std().item() - 0.01) < 0.001


def test_logits_are_the_spatial_mean_of_the_cam_and_the_loss_is_soft_margin(registered):
    model = tiny_oaa_classifier(num_classes=3)
    img = torch.randn(2, 3, 48, 40)
    labels = torch.tensor([[1., 0., 1.], [0., 1., 0.]])
    losses = model(img, labels, mode='loss')
    loss = losses['loss_cls']
    cam, logits = losses['step_maps']['cam'], losses['step_maps']['logits']
    assert cam.shape == (2, 3, 6, 5) and not cam.requires_grad
    assert torch.allclose(logits, cam.mean(dim=(2, 3)))
    assert torch.allclose(model(img), logits, atol=1e-6)
    s = logits
    by_hand = -sum(labels[b, c] * math.log(torch.sigmoid(s[b, c])) +
                   (1 - labels[b, c]) * math.log(1 - torch.sigmoid(s[b, c]))
                   for b in range(2) for c in range(3)) / 6
    assert loss.item() == pytest.approx(float(by_hand), rel=1e-5)
    loss.backward()
    assert model.classifier[0].weight.grad is not None


def test_drop_mask_zeroes_normalised_input_pixels(registered):
    model = tiny_oaa_classifier(num_classes=3)
    img = torch.randn(1, 3, 16, 16)
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., :8, :] = 1
    out = model.apply_drop_mask(img, mask)
    assert not out[..., :8, :].any() and torch.equal(out[..., 8:, :], img[..., 8:, :])
    with pytest.raises(ValueError, match='drop_mask'):
        model.apply_drop_mask(img, torch.zeros(1, 1, 8, 8))
    # in loss mode the mask reaches the network's input
    seen = []
    model.backbone.register_forward_hook(lambda mod, args, out: seen.append(args[0]))
    model(img, torch.ones(1, 3), mode='loss', drop_mask=mask)
    assert not seen[-1][..., :8, :].any() and torch.equal(seen[-1][..., 8:, :], img[..., 8:, :])


def test_reference_lr_groups_x1_x2_x10_x20_with_decay_everywhere(registered):
    from wsss_oaa.testing import oaa_param_groups
    model = tiny_oaa_classifier(num_classes=3)
    groups = oaa_param_groups(model)
    assert {k: g['lr'] for k, g in groups.items()} == pytest.approx(
        dict(backbone=1e-3, backbone_bias=2e-3, head_weight=1e-2, head_bias=2e-2))
    assert all(g['weight_decay'] == pytest.approx(5e-4) for g in groups.values())
    assert all(g['nesterov'] for g in groups.values())
    n_backbone = sum(p.numel() for p in model.backbone.parameters())
    assert sum(p.numel() for g in ('backbone', 'backbone_bias')
               for p in groups[g]['params']) == n_backbone
    head_biases = [m.bias for m in model.classifier if isinstance(m, nn.Conv2d)]
    assert {id(p) for p in groups['head_bias']['params']} == {id(b) for b in head_biases}


def test_backbone_is_swappable_by_config(registered):
    model = _build(dict(type='OAAClassifier', num_classes=4, head_channels=8,
                        backbone=dict(type='SmallResNet', widths=(8, 8, 16, 16))))
    assert model.cam_logits(torch.zeros(1, 3, 48, 48)).shape == (1, 4, 6, 6)
    timm_model = _build(dict(type='OAAClassifier', num_classes=4, head_channels=8,
                             backbone=dict(type='TimmBackbone', model_name='resnet18',
                                           output_stride=8)))
    assert timm_model.cam_logits(torch.zeros(1, 3, 64, 64)).shape == (1, 4, 8, 8)
    assert F.relu(timm_model.cam_logits(torch.zeros(1, 3, 64, 64))).min() >= 0


def test_the_train_step_outputs_carry_the_step_maps_and_log_only_the_loss(registered):
    """parse_losses takes the maps out of the loss dict: the loss is loss_cls alone, the log
    variables are mmengine's ('loss', 'loss_cls'), and outputs.step_maps holds the maps."""
    from wsss_core.models.protocols import StepMapsModel
    from wsss_core.models.step_maps import step_maps_of
    model = tiny_oaa_classifier(num_classes=3)
    assert isinstance(model, StepMapsModel) and model.step_map_keys == ('cam', 'logits')
    img = torch.randn(2, 3, 48, 40)
    labels = torch.tensor([[1., 0., 1.], [0., 1., 0.]])
    losses = model(img, labels, mode='loss')
    loss, outputs = model.parse_losses(losses)
    assert list(outputs) == ['loss', 'loss_cls'] and 'step_maps' in losses
    assert torch.equal(loss, losses['loss_cls'])
    maps = step_maps_of(outputs)
    assert maps['cam'].shape == (2, 3, 6, 5) and maps['logits'].shape == (2, 3)
    assert torch.equal(maps['logits'], losses['step_maps']['logits'])
