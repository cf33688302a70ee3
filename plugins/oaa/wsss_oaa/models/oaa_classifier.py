"""The OAA classifier (Jiang et al., ICCV 2019, §3.1; ``docs/methods/oaa.md`` §2.2-2.3).

    A = head(backbone(x))            class attention maps (B, C, h, w), before pooling
    s_c = mean_{x,y} A_c(x, y)       logits by global average pooling
    L = -1/C sum_c [ y_c log sigma(s_c) + (1 - y_c) log(1 - sigma(s_c)) ]   (multilabel soft margin)

The backbone is any registered backbone (``VGG16OAA`` as in the paper, or a core / timm
one, e.g. ``TimmBackbone('resnet101', output_stride=8)``); the head is
:class:`~.attention_head.AttentionHead`.  In ``'loss'`` mode the step's raw maps and logits
are published (detached) through the train step's outputs for the accumulation hook
(:mod:`wsss_core.models.step_maps`: ``cam`` (B, C, h, w), ``logits`` (B, C)), and an optional
``drop_mask`` (B, 1, H, W) from attention drop zeroes input pixels after normalisation (the
dataset's mean colour), ``docs/methods/oaa.md#25-attention-drop``.

The reference's four learning-rate groups (backbone weights x1, backbone biases x2, head
weights x10, head biases x20, weight decay on all) are the DeepLab plugin's group
constructor with OAA's multipliers, :data:`OAA_PARAMWISE_CFG`.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from wsss_core.models.cam_classifier import CAMClassifier
from wsss_core.models.step_maps import STEP_MAPS_KEY, PublishesStepMaps
from wsss_core.registry import MODELS

from .attention_head import AttentionHead

#: ``paramwise_cfg`` of ``DeepLabOptimWrapperConstructor`` giving OAA's x1 / x2 / x10 / x20
OAA_PARAMWISE_CFG = dict(backbone_lr_mult=1.0, backbone_bias_lr_mult=2.0, head_lr_mult=10.0,
                         head_bias_lr_mult=20.0, head_bias_decay_mult=1.0, weight_rule='name')


@MODELS.register_module()
class OAAClassifier(PublishesStepMaps, CAMClassifier):
    """Backbone -> :class:`AttentionHead` -> GAP, multilabel soft-margin loss.

    ``forward(mode='loss')`` returns ``{'loss_cls', 'step_maps': dict(cam, logits)}``; the
    train step's outputs carry the maps to the accumulation hook
    (:class:`~wsss_core.models.step_maps.PublishesStepMaps`).

    Args:
        backbone: backbone config (``out_channels`` and ``output_stride`` attributes).
        num_classes: C foreground classes.
        head_channels / head_convs: width and number of the head's 3x3 convs (512 / 3).
        init_std: std of the head's normal init (0.01).
        data_preprocessor, channels_last: as :class:`~wsss_core.models.CAMClassifier`.
    """

    step_map_keys = ('cam', 'logits')

    def __init__(self, backbone: dict, num_classes: int, head_channels: int = 512,
                 head_convs: int = 3, init_std: float = 0.01,
                 data_preprocessor: Optional[dict] = None, channels_last: bool = False,
                 init_cfg=None):
        self._head_args = dict(channels=int(head_channels), num_convs=int(head_convs),
                               init_std=float(init_std))
        super().__init__(backbone=backbone, num_classes=num_classes,
                         data_preprocessor=data_preprocessor, channels_last=channels_last,
                         init_cfg=init_cfg)

    def build_classifier(self, in_channels: int, num_classes: int) -> nn.Module:
        return AttentionHead(in_channels, num_classes, **self._head_args)

    def logits(self, img: torch.Tensor) -> torch.Tensor:
        return self.cam_logits(img).mean(dim=(2, 3))

    @staticmethod
    def apply_drop_mask(img: torch.Tensor, drop_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """Zero the (normalised) input where ``drop_mask`` is 1 (attention drop,
        ``docs/methods/oaa.md#25-attention-drop``)."""
        if drop_mask is None:
            return img
        if drop_mask.shape[-2:] != img.shape[-2:]:
            raise ValueError(f'drop_mask is {tuple(drop_mask.shape[-2:])}, the input '
                             f'{tuple(img.shape[-2:])}')
        return img * (1.0 - drop_mask.to(img.dtype))

    def forward(self, img: torch.Tensor, labels: Optional[torch.Tensor] = None,
                mode: str = 'tensor', drop_mask: Optional[torch.Tensor] = None, **kwargs):
        if mode != 'loss':
            return super().forward(img, labels, mode)
        if labels is None:
            raise ValueError("mode='loss' needs the image-level 'labels' in the batch")
        cam = self.cam_logits(self.apply_drop_mask(img, drop_mask))
        logits = cam.mean(dim=(2, 3))
        return {'loss_cls': F.multilabel_soft_margin_loss(logits, labels.float()),
                STEP_MAPS_KEY: dict(cam=cam.detach(), logits=logits.detach())}
