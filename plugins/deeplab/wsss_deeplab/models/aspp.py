"""Atrous spatial pyramid pooling (ASPP), the DeepLab v2 and v3 forms.

**v2** (Chen et al., TPAMI 2018, "DeepLab-ASPP-L"; ``docs/methods/deeplab.md#41-model``):
four parallel 3x3 convolutions straight to the class scores, dilation = padding = r for
r in {6, 12, 18, 24}, each with a bias, their outputs **summed**:

    y = sum_{r in R} (W_r *_r x + b_r),      W_r ~ N(0, 0.01^2),  b_r = 0

(``*_r``: convolution with dilation r).  No BatchNorm, no image-level branch.

**v3** (Chen et al., arXiv 2017 / v3+ ECCV 2018): five 256-channel branches, each
conv + BN + ReLU, **concatenated** and projected by 1x1 conv + BN + ReLU (+ dropout):
a 1x1 conv, three 3x3 convs with rates (6, 12, 18) at output stride 16 (doubled, (12, 24, 36),
at output stride 8), and image pooling: global average -> 1x1 conv -> BN -> ReLU ->
bilinear upsampling to the feature size.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['ASPPv2', 'ASPPv3', 'default_v3_rates']


class ASPPv2(nn.Module):
    """Sum of atrous 3x3 convs ``in_channels -> num_classes`` (see the module docstring).

    Args:
        in_channels: backbone channels (2048 for ResNet-101).
        num_classes: classes incl. background (21 for VOC).
        rates: the dilations (reference 6, 12, 18, 24).
        init_std: std of the normal weight init (reference 0.01; biases 0).
    """

    def __init__(self, in_channels: int, num_classes: int,
                 rates: Sequence[int] = (6, 12, 18, 24), init_std: float = 0.01):
        super().__init__()
        if not rates:
            raise ValueError('ASPPv2 needs at least one rate')
        self.rates = tuple(int(r) for r in rates)
        self.convs = nn.ModuleList(
            nn.Conv2d(in_channels, num_classes, 3, padding=r, dilation=r, bias=True)
            for r in self.rates)
        for conv in self.convs:
            nn.init.normal_(conv.weight, mean=0.0, std=init_std)
            nn.init.zeros_(conv.bias)

    def forward(self, features) -> torch.Tensor:
        x = features[-1] if isinstance(features, (list, tuple)) else features
        out = self.convs[0](x)
        for conv in self.convs[1:]:
            out = out + conv(x)
        return out


def conv_bn_relu(cin: int, cout: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    """``kernel x kernel`` conv (no bias, padding keeps the size) + BatchNorm + ReLU."""
    pad = dilation * (kernel - 1) // 2
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def default_v3_rates(output_stride: int) -> tuple:
    """(6, 12, 18) at output stride 16, scaled by 16 / output_stride (8 -> (12, 24, 36))."""
    if output_stride not in (8, 16, 32):
        raise ValueError(f'output_stride must be 8, 16 or 32, got {output_stride}')
    return tuple(r * 16 // output_stride for r in (6, 12, 18))


class _ImagePool(nn.Module):
    """Global average -> 1x1 conv + BN + ReLU -> bilinear upsampling to the input size."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.project = conv_bn_relu(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.project(F.adaptive_avg_pool2d(x, 1))
        return F.interpolate(pooled, size=x.shape[-2:], mode='bilinear', align_corners=False)


class ASPPv3(nn.Module):
    """DeepLab v3 ASPP: [1x1, 3x3 @ r1, r2, r3, image pool] -> concat -> 1x1 (see docstring).

    Args:
        in_channels: backbone channels; channels: branch width (256).
        rates: the three atrous rates (default :func:`default_v3_rates` of ``output_stride``).
        dropout: after the projection (0.1 in most DeepLab v3 code; 0 to disable).
    """

    def __init__(self, in_channels: int, channels: int = 256, rates: Optional[Sequence[int]] = None,
                 output_stride: int = 16, dropout: float = 0.1):
        super().__init__()
        self.rates = tuple(rates) if rates else default_v3_rates(output_stride)
        self.branches = nn.ModuleList(
            [conv_bn_relu(in_channels, channels, 1)]
            + [conv_bn_relu(in_channels, channels, 3, r) for r in self.rates]
            + [_ImagePool(in_channels, channels)])
        self.project = conv_bn_relu(channels * len(self.branches), channels, 1)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat([branch(x) for branch in self.branches], dim=1)
        return self.dropout(self.project(out))
