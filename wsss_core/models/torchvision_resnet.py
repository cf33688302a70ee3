"""torchvision's ResNet-50/101 as a CAM backbone with the stride conventions of the
irn/MoANA code (torchvision "v1.5" bottlenecks: the stride sits on the 3x3 conv).

``strides`` are the first-block strides of ``layer1..layer4`` after the stride-4 stem; the
reference networks change them without dilating anything:

* irn / MoANA WSSS (output stride 16): ``(1, 2, 2, 1)``;
* MoANA WSOL (output stride 8, 28 x 28 features at 224): ``(1, 2, 1, 1)``;
* torchvision's ImageNet network (output stride 32): ``(1, 2, 2, 2)``.

(timm's ``output_stride`` option dilates instead; use ``TimmBackbone`` for that.)
Weights come from a local torchvision-named file (``resnet50-19c8e357.pth``); nothing is
downloaded.  ``norm_eval`` keeps every BatchNorm in eval mode with frozen affine parameters
(irn's ``FixedBatchNorm``); ``frozen_stem`` stops the gradient of ``conv1``/``bn1`` (irn,
MoANA WSSS).  ``out_indices`` picks the levels returned (0 = stem after max-pool ... 4 =
layer4); one index gives one tensor, several a list.  ``width_mult`` scales every width (the
stem's 64, each stage's planes; 1/16 for tests, whose stand-in weights keep torchvision's
names at the smaller shapes); at 1 the network is torchvision's own.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn as nn

from ..registry import MODELS
from .weights import load_matching_weights

STRIDE_PRESETS = {32: (1, 2, 2, 2), 16: (1, 2, 2, 1), 8: (1, 2, 1, 1)}


@MODELS.register_module()
class TorchvisionResNet(nn.Module):
    """ResNet-50/101 from torchvision with re-set strides; see the module docstring.

    Args:
        depth: 50 or 101.
        output_stride: 32, 16 or 8 (a preset of ``strides``), or give ``strides``.
        strides: first-block strides of layer1..layer4 (no dilation).
        pretrained: local torchvision-named weight file (``fc.*`` is ignored).
        norm_eval: every BatchNorm in eval mode, affine frozen.
        frozen_stem: ``conv1``/``bn1`` get no gradient.
        out_indices: returned levels (default: the last, 4).
        width_mult: multiplies every width (1.0 = torchvision's; 64 * width_mult must be an
            integer >= 1).
    """

    def __init__(self, depth: int = 50, output_stride: int = 16,
                 strides: Optional[Sequence[int]] = None, pretrained: Optional[str] = None,
                 norm_eval: bool = False, frozen_stem: bool = False,
                 out_indices: Union[int, Sequence[int]] = 4, width_mult: float = 1.0):
        super().__init__()
        import torchvision
        builders = {50: torchvision.models.resnet50, 101: torchvision.models.resnet101}
        if depth not in builders:
            raise ValueError(f'depth must be 50 or 101, got {depth}')
        if strides is None:
            if output_stride not in STRIDE_PRESETS:
                raise ValueError(f'output_stride must be one of {sorted(STRIDE_PRESETS)} '
                                 f'(or give strides=), got {output_stride}')
            strides = STRIDE_PRESETS[output_stride]
        strides = tuple(int(s) for s in strides)
        if len(strides) != 4 or any(s not in (1, 2) for s in strides):
            raise ValueError(f'strides must be 4 values of 1 or 2, got {strides}')
        net = builders[depth](weights=None) if width_mult == 1 else \
            _scaled_resnet(depth, width_mult)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = \
            net.layer1, net.layer2, net.layer3, net.layer4
        for layer, stride in zip(self.layers, strides):
            _set_first_block_stride(layer, stride)
        self.strides = strides
        self.out_indices = (out_indices,) if isinstance(out_indices, int) else tuple(out_indices)
        widths = tuple(_scaled(c, width_mult) for c in (64, 256, 512, 1024, 2048))
        reductions = [4]
        for s in strides:
            reductions.append(reductions[-1] * s)
        self.channels = [widths[i] for i in self.out_indices]
        self.reductions = [reductions[i] for i in self.out_indices]
        self.out_channels = self.channels[-1]
        self.output_stride = self.reductions[-1]
        self.norm_eval = bool(norm_eval)
        self.missing_keys: list = []
        if pretrained:
            self.missing_keys = load_matching_weights(
                self, pretrained, f'ResNet-{depth}', 'torchvision names such as conv1.weight, '
                'layer1.0.conv1.weight')
        if frozen_stem:
            for p in (*self.conv1.parameters(), *self.bn1.parameters()):
                p.requires_grad_(False)
        if self.norm_eval:
            for bn in self._norms():
                for p in bn.parameters():
                    p.requires_grad_(False)
        self.train(self.training)

    @property
    def layers(self):
        return (self.layer1, self.layer2, self.layer3, self.layer4)

    def _norms(self):
        return [m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def train(self, mode: bool = True) -> 'TorchvisionResNet':
        """``nn.Module.train`` that leaves every BatchNorm in eval mode when ``norm_eval``."""
        super().train(mode)
        if self.norm_eval:
            for bn in self._norms():
                bn.eval()
        return self

    def forward(self, x: torch.Tensor):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = [x]
        for layer in self.layers:
            x = layer(x)
            outs.append(x)
        picked = [outs[i] for i in self.out_indices]
        return picked[0] if len(picked) == 1 else picked


def _scaled(width: int, width_mult: float) -> int:
    value = width * width_mult
    if value < 1 or abs(value - round(value)) > 1e-6:
        raise ValueError(f'width_mult={width_mult} gives a non-integer width {value:g} for '
                         f'{width} channels: use a power of two with 64 * width_mult >= 1')
    return int(round(value))


def _scaled_resnet(depth: int, width_mult: float) -> nn.Module:
    """torchvision's ResNet-50/101 layout (its ``Bottleneck``, module names and strides) with
    every width multiplied by ``width_mult``: stem ``64 w``, stage planes ``(64, 128, 256,
    512) w`` expanded 4x, a 1x1 projection on each stage's first block."""
    from torchvision.models.resnet import Bottleneck, conv1x1
    blocks = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}[depth]
    net = nn.Module()
    stem = _scaled(64, width_mult)
    net.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(stem)
    net.relu = nn.ReLU(inplace=True)
    net.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    inplanes = stem
    for i, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks)):
        planes, stride = _scaled(planes, width_mult), 1 if i == 0 else 2
        out = planes * Bottleneck.expansion
        downsample = nn.Sequential(conv1x1(inplanes, out, stride), nn.BatchNorm2d(out))
        layer = [Bottleneck(inplanes, planes, stride, downsample)]
        layer += [Bottleneck(out, planes) for _ in range(1, count)]
        setattr(net, f'layer{i + 1}', nn.Sequential(*layer))
        inplanes = out
    return net


def _set_first_block_stride(layer: nn.Sequential, stride: int) -> None:
    """Set the stride of a torchvision ResNet stage (its first block's 3x3 and shortcut)."""
    block = layer[0]
    block.conv2.stride = (stride, stride)
    if block.downsample is not None:
        block.downsample[0].stride = (stride, stride)
