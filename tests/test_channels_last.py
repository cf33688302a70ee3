"""The channels_last stage option's helpers (wsss_core.pipeline.memory_format): NHWC weights
and NHWC batches from the data preprocessor, numbers equal to the default's."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from wsss_core.models.cam_classifier import CAMClassifier
from wsss_core.models.data_preprocessor import NormalizeImages
from wsss_core.pipeline.memory_format import check_channels_last, to_channels_last
from wsss_core.pipeline.stage import StageError

NHWC = torch.channels_last


def first_conv(model: nn.Module) -> nn.Conv2d:
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


def seen_by_first_conv(model: nn.Module, img: torch.Tensor) -> tuple:
    """(class maps, the input the first conv received) for a uint8 batch."""
    seen = []
    handle = first_conv(model).register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    try:
        with torch.no_grad():
            out = model.cam_logits(model.data_preprocessor(dict(img=img))['img'])
    finally:
        handle.remove()
    return out, seen[0]


def test_normalize_hands_out_nhwc_with_the_same_values():
    img = torch.randint(0, 256, (2, 3, 5, 7), dtype=torch.uint8)
    plain, nhwc = NormalizeImages(), NormalizeImages(channels_last=True)
    a, b = plain.normalize(img), nhwc.normalize(img)
    assert b.is_contiguous(memory_format=NHWC) and not a.is_contiguous(memory_format=NHWC)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(a, (img / 255.0 - mean) / std)   # the formula, by hand
    assert torch.equal(a, b)                                     # a layout change only


def test_to_channels_last_converts_weights_and_inputs_and_keeps_the_maps(core_registered):
    torch.manual_seed(0)
    ref = CAMClassifier(backbone=dict(type='SmallResNet', widths=(8, 8, 16, 16)),
                        num_classes=3).eval()
    nhwc = to_channels_last(copy.deepcopy(ref), 'demo')
    assert nhwc.data_preprocessor.channels_last and not ref.data_preprocessor.channels_last
    assert first_conv(nhwc).weight.is_contiguous(memory_format=NHWC)
    assert not first_conv(ref).weight.is_contiguous(memory_format=NHWC)
    assert all(p.is_contiguous(memory_format=NHWC) for p in nhwc.parameters() if p.dim() == 4)
    img = torch.randint(0, 256, (2, 3, 24, 24), dtype=torch.uint8)
    want, x_ref = seen_by_first_conv(ref, img)
    got, x_nhwc = seen_by_first_conv(nhwc, img)
    assert x_nhwc.is_contiguous(memory_format=NHWC)
    assert not x_ref.is_contiguous(memory_format=NHWC)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_a_preprocessor_without_the_switch_is_refused():
    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.data_preprocessor = nn.Identity()
            self.conv = nn.Conv2d(3, 4, 3)

    with pytest.raises(StageError, match=r'\[demo\] channels_last=True needs .*Identity'):
        to_channels_last(Plain(), 'demo')


def test_check_channels_last_takes_booleans_only():
    assert check_channels_last('s', True) is True and check_channels_last('s', False) is False
    for bad in (1, 'yes', None):
        with pytest.raises(StageError, match=r'\[s\] channels_last must be True or False'):
            check_channels_last('s', bad)


def test_cpu_training_refuses_the_convolution_whose_backward_crashes_torch(core_registered):
    """1x1 stride-2 convolutions with < 16 input channels (SmallResNet's shortcuts at width
    8) are refused for CPU training, by name; 16 channels, inference and CUDA pass."""
    from wsss_core.pipeline.memory_format import crashing_convolutions
    thin = CAMClassifier(backbone=dict(type='SmallResNet', widths=(8, 8, 16, 16)), num_classes=3)
    assert crashing_convolutions(thin) == ['backbone.stages.1.proj.0', 'backbone.stages.2.proj.0']
    with pytest.raises(StageError, match=r'\[demo\] channels_last=True on the CPU.*'
                                         r'backbone\.stages\.1\.proj\.0 and 1 more.*'
                                         r'segmentation fault'):
        to_channels_last(copy.deepcopy(thin), 'demo', training_on='cpu')
    assert to_channels_last(copy.deepcopy(thin), 'demo').data_preprocessor.channels_last
    assert to_channels_last(copy.deepcopy(thin), 'demo', training_on='cuda:0') is not None
    wide = CAMClassifier(backbone=dict(type='SmallResNet', widths=(16, 16, 32, 32)),
                         num_classes=3)
    assert crashing_convolutions(wide) == []
    assert to_channels_last(wide, 'demo', training_on='cpu') is not None
