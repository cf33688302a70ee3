"""The baseline CAM classifier: backbone -> 1x1 classifier -> global average pooling.

Class activation map (Zhou et al., CVPR 2016, eq. 1-2, in the bias-free 1x1-conv form):

    M_c(x, y) = ReLU( sum_k w_{c,k} f_k(x, y) ),      logit_c = sum_k w_{c,k} GAP(f_k)

so the logits equal the spatial mean of the un-rectified maps.  Trained with the
multilabel soft-margin loss  L = -1/C sum_c [ y_c log s(z_c) + (1 - y_c) log(1 - s(z_c)) ].
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel

from ..registry import MODELS, build


@MODELS.register_module()
class CAMClassifier(BaseModel):
    """Backbone features ``f`` (B, D, h, w), bias-free 1x1 conv to C classes, GAP.

    ``channels_last=True`` keeps weights and inputs NHWC (about 1.3x faster training of
    the SmallResNet on 2 CPU cores).

    ``forward(img, labels, mode)``: ``'loss'`` -> ``{'loss_cls'}``; ``'predict'`` -> a list of
    ``{'scores', 'labels'}`` per image; ``'tensor'`` -> logits.  :meth:`cam_logits` gives the
    un-rectified class maps used by the CAM generators.
    """

    def __init__(self, backbone: dict, num_classes: int, dropout: float = 0.0,
                 data_preprocessor: Optional[dict] = None, channels_last: bool = False,
                 init_cfg=None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='NormalizeImages')
        if channels_last and isinstance(data_preprocessor, dict):
            data_preprocessor = dict(data_preprocessor, channels_last=True)
        super().__init__(data_preprocessor=build(data_preprocessor, MODELS), init_cfg=init_cfg)
        self.backbone = build(backbone, MODELS)
        self.num_classes = int(num_classes)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.classifier = self.build_classifier(self.backbone.out_channels, self.num_classes)
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def build_classifier(self, in_channels: int, num_classes: int) -> nn.Module:
        """The head from features to class maps: here a bias-free 1x1 conv (subclasses
        with a deeper head override this and :meth:`logits`)."""
        conv = nn.Conv2d(in_channels, num_classes, 1, bias=False)
        nn.init.xavier_uniform_(conv.weight)
        return conv

    @property
    def output_stride(self) -> int:
        return getattr(self.backbone, 'output_stride', 8)

    def extract_feat(self, img: torch.Tensor) -> torch.Tensor:
        return self.backbone(img)

    def cam_logits(self, img: torch.Tensor) -> torch.Tensor:
        """Un-rectified class maps ``W * f`` at the backbone's stride, (B, C, h, w)."""
        return self.classifier(self.extract_feat(img))

    def logits(self, img: torch.Tensor) -> torch.Tensor:
        feat = self.dropout(self.extract_feat(img))
        return self.classifier(feat.mean(dim=(2, 3), keepdim=True)).flatten(1)

    def forward(self, img: torch.Tensor, labels: Optional[torch.Tensor] = None,
                mode: str = 'tensor', **kwargs):
        logits = self.logits(img)
        if mode == 'loss':
            if labels is None:
                raise ValueError("mode='loss' needs the image-level 'labels' in the batch")
            return {'loss_cls': F.multilabel_soft_margin_loss(logits, labels.float())}
        if mode == 'predict':
            scores = torch.sigmoid(logits)
            if labels is None:
                labels = torch.zeros_like(scores)
            return [dict(scores=s, labels=y) for s, y in zip(scores, labels)]
        return logits
