"""ResNet backbone of DeepLab v2 (and v3+): bottleneck ResNet with atrous (dilated) stages.

The layout of deeplab-pytorch's ResNet-101 (``docs/methods/deeplab.md#41-model``), in
torchvision/timm module names so that ImageNet weights of either load by name:

* stem: 7x7 conv stride 2 pad 3 (no bias) + BN + ReLU, then 3x3 max-pool stride 2 pad 1
  with ``ceil_mode=True`` (the Caffe pooling rounding);
* four stages of bottlenecks (``layer1``..``layer4``; deeplab-pytorch calls them
  ``layer2``..``layer5``) with (3, 4, 23, 3) blocks for depth 101 and widths
  ``w = base_width * 2^i`` (output ``4w``);
* bottleneck: 1x1 reduce -> 3x3 (padding = dilation) -> 1x1 expand (x4), each conv bias-free
  and followed by BN; projection shortcut (1x1 conv + BN, same stride) in the first block of
  every stage; ReLU after the residual sum.  The stride sits on the 1x1 reduce conv
  (Caffe/MSRA, ``stride_in_1x1=True``, what the COCO-initialised DeepLab weights expect) or
  on the 3x3 conv (torchvision "v1.5", ``stride_in_1x1=False``, for torchvision/timm
  ImageNet weights);
* output stride 8: stage strides (1, 2, 1, 1) and dilations (1, 1, 2, 4), every block of a
  stage using the stage's dilation (times ``multi_grid[i]`` for the last stage, DeepLab v3).

Why not timm's ``resnet101(output_stride=8)``?  Its layout differs in three ways that matter:
the stem max-pool floors instead of ceiling (a 321 crop still gives 41x41, but the MSC
inputs 160 and 240 give 20x20 and 30x30 instead of the reference's 21x21 and 31x31), the
first block of a dilated stage uses the previous stage's dilation, and the stride sits on the
3x3 conv, so the Caffe-trained COCO weights would compute different features.  The names here
match timm's, so timm's ImageNet weights still load (see :mod:`.weights`).

Sizes for an input of side n: stem conv ``a = floor((n - 1) / 2) + 1``, pool
``b = ceil((a - 1) / 2) + 1``, then each stride-2 stage ``floor((m - 1) / 2) + 1``:
321 -> 41, 240 -> 31, 160 -> 21 at output stride 8.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from wsss_core.registry import MODELS

from .frozen_bn import FrozenBatchNorm2d, freeze_batch_norm

__all__ = ['ARCHS', 'STRIDE_LAYOUTS', 'Bottleneck', 'DeepLabResNet', 'deeplab_resnet101',
           'deeplab_resnet_tiny']

#: depth -> (blocks per stage, base width); 'tiny' is for tests (same strides and dilations)
ARCHS = {
    50: ((3, 4, 6, 3), 64),
    101: ((3, 4, 23, 3), 64),
    152: ((3, 8, 36, 3), 64),
    'tiny': ((1, 1, 1, 1), 4),
}

#: output stride -> (stage strides, stage dilations)
STRIDE_LAYOUTS = {
    8: ((1, 2, 1, 1), (1, 1, 2, 4)),
    16: ((1, 2, 2, 1), (1, 1, 1, 2)),
    32: ((1, 2, 2, 2), (1, 1, 1, 1)),
}

EXPANSION = 4


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == 'frozen':
        return FrozenBatchNorm2d(channels, eps=1e-5)
    if kind == 'bn':
        return nn.BatchNorm2d(channels, eps=1e-5)
    raise ValueError(f"norm must be 'frozen' or 'bn', not {kind!r}")


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (dilated) -> 1x1 (x4) residual block; see the module docstring."""

    def __init__(self, in_ch: int, width: int, stride: int = 1, dilation: int = 1,
                 stride_in_1x1: bool = True, norm: str = 'frozen'):
        super().__init__()
        out_ch = width * EXPANSION
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = nn.Conv2d(in_ch, width, 1, stride=s1, bias=False)
        self.bn1 = _norm(norm, width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=s3, padding=dilation, dilation=dilation,
                               bias=False)
        self.bn2 = _norm(norm, width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = _norm(norm, out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False),
                                            _norm(norm, out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


@MODELS.register_module()
class DeepLabResNet(nn.Module):
    """Dilated bottleneck ResNet returning the feature maps of ``out_indices``.

    Args:
        depth: a key of :data:`ARCHS` (50, 101, 152 or ``'tiny'``).
        layers / base_width: override the blocks per stage and the width of the arch.
        output_stride: 8, 16 or 32 (:data:`STRIDE_LAYOUTS`).
        multi_grid: per-block dilation multipliers of the last stage (DeepLab v3), or None.
        stride_in_1x1: stride on the 1x1 reduce conv (Caffe, reference) or on the 3x3.
        ceil_mode: the stem max-pool's rounding (True in the reference).
        norm: ``'frozen'`` (reference: :class:`FrozenBatchNorm2d`) or ``'bn'`` (trainable).
        out_indices: which stages' outputs to return (0..3); DeepLab v2 uses (3,), v3+ (0, 3).
        pretrained: a local weight file (ImageNet in torchvision/timm names, or a converted
            deeplab-pytorch checkpoint), loaded by :func:`~.weights.load_backbone_weights`.
        timm_weights: a timm model name (e.g. ``'resnet101.tv_in1k'``) whose ImageNet weights
            are taken from the local timm/Hugging Face cache only (nothing is downloaded).

    Attributes:
        feature_channels: channels of each returned map; ``out_channels`` the last one.
        output_stride: the stride of the last returned map (8 for the reference).
    """

    def __init__(self, depth: Union[int, str] = 101, layers: Optional[Sequence[int]] = None,
                 base_width: Optional[int] = None, output_stride: int = 8,
                 multi_grid: Optional[Sequence[int]] = None, stride_in_1x1: bool = True,
                 ceil_mode: bool = True, norm: str = 'frozen',
                 out_indices: Sequence[int] = (3,), pretrained: Optional[str] = None,
                 timm_weights: Optional[str] = None, in_channels: int = 3):
        super().__init__()
        if depth not in ARCHS:
            raise ValueError(f'unknown DeepLabResNet depth {depth!r}; choose from {list(ARCHS)}')
        if output_stride not in STRIDE_LAYOUTS:
            raise ValueError(f'output_stride must be one of {sorted(STRIDE_LAYOUTS)}, '
                             f'got {output_stride}')
        arch_layers, arch_width = ARCHS[depth]
        layers = tuple(int(n) for n in (layers or arch_layers))
        width = int(base_width or arch_width)
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f'layers must be 4 positive block counts, got {layers}')
        out_indices = tuple(sorted({int(i) for i in out_indices}))
        if not out_indices or any(i not in range(4) for i in out_indices):
            raise ValueError(f'out_indices must be stage indices in 0..3, got {out_indices}')
        strides, dilations = STRIDE_LAYOUTS[output_stride]
        grid = tuple(multi_grid) if multi_grid else (1,) * layers[3]
        if len(grid) != layers[3]:
            raise ValueError(f'multi_grid {grid} must have one entry per block of the last '
                             f'stage ({layers[3]})')

        self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = _norm(norm, width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=ceil_mode)
        channels = self._make_stages(width, layers, strides, dilations, grid, stride_in_1x1,
                                     norm)
        self.out_indices = out_indices
        self.feature_channels = tuple(channels[i] for i in out_indices)
        self.out_channels = self.feature_channels[-1]
        stage_strides = [4]
        for stride in strides[1:]:
            stage_strides.append(stage_strides[-1] * stride)
        self.output_stride = stage_strides[out_indices[-1]]
        self.depth, self.norm = depth, norm
        self._init_weights()
        if pretrained or timm_weights:
            from .weights import load_backbone_weights
            self.load_report = load_backbone_weights(self, pretrained=pretrained,
                                                     timm_weights=timm_weights)

    def _make_stages(self, width, layers, strides, dilations, grid, stride_in_1x1,
                     norm) -> list:
        """Add ``layer1..layer4``; return their output channels."""
        in_ch, channels = width, []
        for i, (n_blocks, stride, dilation) in enumerate(zip(layers, strides, dilations)):
            stage_width = width * 2 ** i
            blocks = []
            for j in range(n_blocks):
                d = dilation * (grid[j] if i == 3 else 1)
                blocks.append(Bottleneck(in_ch, stage_width, stride if j == 0 else 1, d,
                                         stride_in_1x1, norm))
                in_ch = stage_width * EXPANSION
            self.add_module(f'layer{i + 1}', nn.Sequential(*blocks))
            channels.append(in_ch)
        return channels

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def stages(self) -> Tuple[nn.Module, ...]:
        return (self.layer1, self.layer2, self.layer3, self.layer4)

    def forward(self, x: torch.Tensor) -> list:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
            if i == self.out_indices[-1]:
                break
        return outs

    def freeze_norm(self) -> 'DeepLabResNet':
        """Turn every trainable BatchNorm into a :class:`FrozenBatchNorm2d` (after loading)."""
        freeze_batch_norm(self)
        self.norm = 'frozen'
        return self


def deeplab_resnet101(**kwargs) -> DeepLabResNet:
    """The reference backbone: ResNet-101, output stride 8, Caffe strides, frozen BN."""
    return DeepLabResNet(depth=101, **kwargs)


def deeplab_resnet_tiny(**kwargs) -> DeepLabResNet:
    """One block per stage, base width 4: the reference strides and dilations, for tests."""
    return DeepLabResNet(depth='tiny', **kwargs)
