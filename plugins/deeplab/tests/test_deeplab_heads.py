"""DeepLab v3+ head, ASPP v2 initialisation and the Caffe input normalisation."""
from __future__ import annotations

import pytest
import torch

from wsss_deeplab.testing import registered, tiny_v2  # noqa: F401 (fixture)


def tiny_v3plus(output_stride=16, **kwargs):
    from wsss_core.registry import MODELS, build
    torch.manual_seed(0)
    return build(dict(type='DeepLabV3Plus', num_classes=3, aspp_channels=8, decoder_channels=8,
                      low_level_channels=4,
                      backbone=dict(type='DeepLabResNet', depth='tiny',
                                    output_stride=output_stride), **kwargs), MODELS)


def test_aspp_v2_is_a_sum_of_four_atrous_convs_with_reference_init(registered):
    head = tiny_v2(num_classes=5).decode_head
    assert head.rates == (6, 12, 18, 24)
    assert [c.dilation for c in head.convs] == [(r, r) for r in (6, 12, 18, 24)]
    assert [c.padding for c in head.convs] == [(r, r) for r in (6, 12, 18, 24)]
    assert all(torch.count_nonzero(c.bias) == 0 for c in head.convs)
    std = torch.cat([c.weight.flatten() for c in head.convs]).std().item()
    assert std == pytest.approx(0.01, rel=0.1)
    x = torch.randn(1, 128, 9, 9)
    expected = sum(c(x) for c in head.convs)
    torch.testing.assert_close(head([x]), expected)


def test_v3plus_shapes_rates_and_stride4_decoder(registered):
    model = tiny_v3plus()
    assert model.decode_head.aspp.rates == (6, 12, 18)
    assert len(model.decode_head.aspp.branches) == 5          # 1x1, three 3x3, image pool
    x = torch.randn(2, 3, 65, 65)
    assert model.fused_logits(x).shape[-2:] == (17, 17)      # stride 4 (ceil-mode pool)
    assert model(x, mode='predict').shape == (2, 3, 65, 65)
    assert tiny_v3plus(output_stride=8).decode_head.aspp.rates == (12, 24, 36)


def test_v3plus_trains_on_labels(registered):
    model = tiny_v3plus().train()
    losses = model(torch.randn(2, 3, 33, 33), gt_seg=torch.randint(0, 3, (2, 33, 33)),
                   mode='loss')
    assert set(losses) == {'loss_x1', 'num_ignored_batches'}
    total, _ = model.parse_losses(losses)
    total.backward()
    assert model.decode_head.classifier.weight.grad.abs().sum() > 0


def test_caffe_normalize_by_hand(registered):
    from wsss_deeplab.models.caffe_normalize import CaffeNormalize
    pre = CaffeNormalize()
    img = torch.tensor([255, 0, 10], dtype=torch.uint8).view(1, 3, 1, 1)   # R, G, B
    out = pre(dict(img=img))['img'].flatten()
    torch.testing.assert_close(out, torch.tensor([10 - 104.008, 0 - 116.669, 255 - 122.675]))
    model = tiny_v2(input_style='caffe')
    assert isinstance(model.data_preprocessor, CaffeNormalize)
    with pytest.raises(ValueError, match='input_style'):
        tiny_v2(input_style='bgr')


def test_any_backbone_with_out_channels_works(registered):
    from wsss_core.registry import MODELS, build
    model = build(dict(type='DeepLabV2', num_classes=3, msc_scales=(),
                       backbone=dict(type='TimmBackbone', model_name='resnet18',
                                     output_stride=8)), MODELS).train()
    outs = model.multi_logits(torch.randn(1, 3, 64, 64))
    assert len(outs) == 1 and outs[0].shape == (1, 3, 8, 8)
    assert model.output_names() == ['x1']
