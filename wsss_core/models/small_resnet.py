"""SmallResNet: a narrow ResNet for CPU runs on SyntheticShapes (about 0.69 M parameters).

One BasicBlock per stage after a stride-2 stem; with the defaults (widths 24/48/96/192,
strides 1/2/2/1, dilation 2 in the last stage) the output stride is 8, as in the calibration
of ``docs/synthetic_shapes.md#5-calibration-and-what-to-expect``.  Use a timm backbone
(``TimmBackbone``) for real data.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch.nn as nn

from ..registry import MODELS


class BasicBlock(nn.Module):
    """Two 3x3 conv + BN, residual with a 1x1 projection when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.proj is None else self.proj(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


@MODELS.register_module()
class SmallResNet(nn.Module):
    """Stem conv3x3/2 + one BasicBlock per stage; ``out_channels`` = last width.

    ``out_indices``: None returns the last stage's map; a sequence of levels (0 = stem,
    1.. = stages) returns that list of maps, with their ``channels`` and ``reductions``
    listed (a multi-level backbone, e.g. for the IRN, whose weights match the single-level
    network's).

    ``pretrained``: a local weight file under this network's own names (``stem.0.weight``,
    ``stages.0.conv1.weight``, ...; ``module.`` / ``backbone.`` prefixes are dropped), e.g. the
    one a :class:`~wsss_core.pipeline.pretrain.Pretrain` stage writes; a file of another width
    is refused naming the tensor (:func:`~wsss_core.models.weights.load_matching_weights`).
    """

    def __init__(self, widths: Sequence[int] = (24, 48, 96, 192),
                 strides: Sequence[int] = (1, 2, 2, 1), dilations: Sequence[int] = (1, 1, 1, 2),
                 in_channels: int = 3, out_indices: Optional[Sequence[int]] = None,
                 pretrained: Optional[str] = None):
        super().__init__()
        if not len(widths) == len(strides) == len(dilations):
            raise ValueError('widths, strides and dilations must have the same length')
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 2, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        blocks, cin = [], widths[0]
        for w, s, d in zip(widths, strides, dilations):
            blocks.append(BasicBlock(cin, w, s, d))
            cin = w
        self.stages = nn.Sequential(*blocks)
        self.out_channels = cin
        levels, reductions = [widths[0], *widths], [2]
        for s in strides:
            reductions.append(reductions[-1] * s)
        self.output_stride = reductions[-1]
        self.out_indices = None if out_indices is None else tuple(int(i) for i in out_indices)
        if self.out_indices is not None:
            bad = [i for i in self.out_indices if not 0 <= i < len(levels)]
            if bad:
                raise ValueError(f'out_indices {bad} out of range 0..{len(levels) - 1}')
            self.channels = [levels[i] for i in self.out_indices]
            self.reductions = [reductions[i] for i in self.out_indices]
            self.out_channels = self.channels[-1]
        if pretrained:
            from .weights import load_matching_weights
            load_matching_weights(self, pretrained, 'SmallResNet',
                                  'its own names such as stem.0.weight')

    def forward(self, x):
        x = self.stem(x)
        if self.out_indices is None:
            return self.stages(x)
        outs = [x]
        for block in self.stages:
            x = block(x)
            outs.append(x)
        return [outs[i] for i in self.out_indices]
