"""DeepLab v3+: ASPP with image pooling on the last stage, plus a decoder with low-level features.

Chen, Zhu, Papandreou, Schroff, Adam, "Encoder-Decoder with Atrous Separable Convolution for
Semantic Image Segmentation", ECCV 2018 (with plain, not separable, convolutions):

    a = ASPPv3(f_4)                                   (256 ch, output stride 16 or 8)
    l = ReLU(BN(W_48 * f_1))                          (48 ch, stride 4: low-level features)
    d = conv3x3_256(conv3x3_256([up(a, size(l)), l]))  (each conv + BN + ReLU)
    y = W_cls * d + b                                  (stride 4; upsampled to the input)

``f_1``, ``f_4``: outputs of the first and last backbone stages (``out_indices=(0, 3)``).
The ASPP rates are (6, 12, 18) at output stride 16 and (12, 24, 36) at 8.  Head BatchNorms
train (the head starts from scratch); the backbone's are frozen as in v2.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from wsss_core.registry import MODELS

from .aspp import ASPPv3, conv_bn_relu
from .segmentor import DeepLabSegmentor

__all__ = ['V3PlusHead', 'DeepLabV3Plus']

DEFAULT_BACKBONE = dict(type='DeepLabResNet', depth=101, output_stride=16, out_indices=(0, 3))


class V3PlusHead(nn.Module):
    """ASPPv3 on the deepest features + decoder with the stride-4 features (see docstring)."""

    def __init__(self, low_channels: int, high_channels: int, num_classes: int,
                 output_stride: int = 16, rates: Optional[Sequence[int]] = None,
                 aspp_channels: int = 256, low_level_channels: int = 48,
                 decoder_channels: int = 256, dropout: float = 0.1):
        super().__init__()
        self.aspp = ASPPv3(high_channels, aspp_channels, rates, output_stride, dropout)
        self.low_level = conv_bn_relu(low_channels, low_level_channels, 1)
        self.fuse = nn.Sequential(
            conv_bn_relu(aspp_channels + low_level_channels, decoder_channels, 3),
            conv_bn_relu(decoder_channels, decoder_channels, 3))
        self.classifier = nn.Conv2d(decoder_channels, num_classes, 1)

    def forward(self, features: List[torch.Tensor]) -> torch.Tensor:
        if len(features) < 2:
            raise ValueError('DeepLab v3+ needs low- and high-level features: give the backbone '
                             'out_indices=(0, 3)')
        low, high = features[0], features[-1]
        a = self.aspp(high)
        a = F.interpolate(a, size=low.shape[-2:], mode='bilinear', align_corners=False)
        d = self.fuse(torch.cat([a, self.low_level(low)], dim=1))
        return self.classifier(d)


@MODELS.register_module()
class DeepLabV3Plus(DeepLabSegmentor):
    """DeepLab v3+ (see the module docstring).

    Args:
        backbone: must return the stride-4 and the last features (default ResNet-101,
            output stride 16, ``out_indices=(0, 3)``); a ``DeepLabResNet`` config without
            ``out_indices`` gets (0, 3).
        num_classes: classes including background.
        rates: ASPP rates (default from the backbone's output stride).
        aspp_channels, low_level_channels, decoder_channels, dropout: head sizes.
        msc_scales: default () (single scale); **kwargs: see ``DeepLabSegmentor``.
    """

    #: training stages refuse a smaller ``batch_size`` when they are built
    min_train_batch_size = 2
    min_train_batch_reason = ("the BatchNorm of the ASPP's image-pooling branch normalises "
                              'a 1x1 map: one value per channel in a batch of one')

    def __init__(self, num_classes: int, backbone: Optional[dict] = None,
                 rates: Optional[Sequence[int]] = None, aspp_channels: int = 256,
                 low_level_channels: int = 48, decoder_channels: int = 256,
                 dropout: float = 0.1, msc_scales: Sequence[float] = (), **kwargs):
        backbone = dict(backbone or DEFAULT_BACKBONE)
        if backbone.get('type') == 'DeepLabResNet':
            backbone.setdefault('out_indices', (0, 3))
        self._head_args = dict(rates=rates, aspp_channels=aspp_channels,
                               low_level_channels=low_level_channels,
                               decoder_channels=decoder_channels, dropout=dropout)
        super().__init__(backbone=backbone, num_classes=num_classes, msc_scales=msc_scales,
                         **kwargs)

    def build_head(self) -> nn.Module:
        channels = getattr(self.backbone, 'feature_channels', None)
        if not channels or len(channels) < 2:
            raise ValueError('DeepLabV3Plus needs a backbone returning two feature maps '
                             '(feature_channels); use DeepLabResNet with out_indices=(0, 3)')
        return V3PlusHead(channels[0], channels[-1], self.num_classes, self.output_stride,
                          **self._head_args)
