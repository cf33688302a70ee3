"""DeepLab v2: dilated ResNet (output stride 8) + ASPP-v2 (sum of 4 atrous convs) + MSC.

Chen, Papandreou, Kokkinos, Murphy, Yuille, "DeepLab: Semantic Image Segmentation with Deep
Convolutional Nets, Atrous Convolution, and Fully Connected CRFs", TPAMI 2018; as trained by
kazuto1011/deeplab-pytorch, the segmentation stage of OAA and NSROM
(``docs/methods/deeplab.md#4-the-reference-recipe``):

    y_s = sum_{r in {6,12,18,24}} W_r *_r f(x_s) + b_r          (f: ResNet-101, stride 8)
    y   = max(y_1, up(y_0.5), up(y_0.75))                          (MSC, evaluation)

Training scores the four outputs ``[y_1, y_0.5, y_0.75, y_max]`` separately
(:mod:`.seg_loss`).  Reference configuration::

    dict(type='DeepLabV2', num_classes=21,
         backbone=dict(type='DeepLabResNet', depth=101),        # stride 8, frozen BN
         input_style='caffe', init_checkpoint='item:deeplabv2-r101-coco')
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch.nn as nn

from wsss_core.registry import MODELS

from .. import crf_preset  # noqa: F401  (registers the dense-CRF preset 'deeplab')
from .aspp import ASPPv2
from .segmentor import DeepLabSegmentor

__all__ = ['DeepLabV2']

DEFAULT_BACKBONE = dict(type='DeepLabResNet', depth=101, output_stride=8)


@MODELS.register_module()
class DeepLabV2(DeepLabSegmentor):
    """DeepLab v2 (see the module docstring).

    Args:
        backbone: backbone config (default ResNet-101 at output stride 8, frozen BN).
        num_classes: classes including background.
        rates: ASPP dilations (6, 12, 18, 24); aspp_init_std: 0.01.
        msc_scales: extra MSC scales, default (0.5, 0.75); () for single scale.
        **kwargs: see :class:`~.segmentor.DeepLabSegmentor`.
    """

    def __init__(self, num_classes: int, backbone: Optional[dict] = None,
                 rates: Sequence[int] = (6, 12, 18, 24), aspp_init_std: float = 0.01,
                 msc_scales: Sequence[float] = (0.5, 0.75), **kwargs):
        self.rates = tuple(int(r) for r in rates)
        self.aspp_init_std = float(aspp_init_std)
        super().__init__(backbone=dict(backbone or DEFAULT_BACKBONE), num_classes=num_classes,
                         msc_scales=msc_scales, **kwargs)

    def build_head(self) -> nn.Module:
        return ASPPv2(self.backbone.out_channels, self.num_classes, self.rates,
                      self.aspp_init_std)
