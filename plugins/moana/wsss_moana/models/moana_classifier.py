"""The MoANA CAM classifier: backbone (+ MoANA block) -> 1x1 classifier with bias -> GAP.

Both released networks put a Conv2d(C -> K, 1x1, bias=True) on the calibrated features
X_hat and average-pool its output (``docs/methods/moana.md#3-where-the-block-goes``):

    S = W * X_hat + b,     logit_k = mean_{i,j} S_k(i, j)   (= W GAP(X_hat) + b)

* WSOL: the loss is the softmax cross-entropy on the logits (one class per image) and the CAM
  is S_y itself, bias included (``cam_bias=True``).
* WSSS (irn convention): the multilabel soft-margin loss, and the CAM uses the weights only,
  ReLU(W * X_hat) (``cam_bias=False``): the bias only shifts the training logits.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from wsss_core.models.cam_classifier import CAMClassifier
from wsss_core.registry import MODELS

from .. import wsol_mode  # noqa: F401  (registers the WSOL evaluation mode 'moana-compat')

LOSSES = ('multilabel_soft_margin', 'cross_entropy')


@MODELS.register_module()
class MoANAClassifier(CAMClassifier):
    """``CAMClassifier`` with a biased 1x1 classifier and the WSOL or WSSS loss.

    Args:
        backbone: e.g. ``dict(type='WithMoANA', backbone=dict(type='TorchvisionResNet',
            output_stride=8), moana=dict(preset='wsol'))``; ``enabled=False`` inside
            ``WithMoANA`` gives the same network without the block (the baseline).
        loss: ``'cross_entropy'`` (WSOL: the label vector must be one-hot) or
            ``'multilabel_soft_margin'`` (WSSS).
        cam_bias: add the classifier bias to the class maps (WSOL) or not (WSSS).
        init: ``'kaiming'`` (the WSOL code: Kaiming-normal, fan_out, zero bias) or
            ``'xavier'`` (the core classifier's).
    """

    def __init__(self, backbone: dict, num_classes: int, loss: str = 'multilabel_soft_margin',
                 cam_bias: bool = False, init: str = 'kaiming', **kwargs):
        if loss not in LOSSES:
            raise ValueError(f'loss must be one of {LOSSES}, got {loss!r}')
        if init not in ('kaiming', 'xavier'):
            raise ValueError(f"init must be 'kaiming' or 'xavier', got {init!r}")
        self.init_mode = init
        super().__init__(backbone=backbone, num_classes=num_classes, **kwargs)
        self.loss_name = loss
        self.cam_bias = bool(cam_bias)

    def build_classifier(self, in_channels: int, num_classes: int) -> nn.Module:
        conv = nn.Conv2d(in_channels, num_classes, 1, bias=True)
        if self.init_mode == 'kaiming':
            nn.init.kaiming_normal_(conv.weight, mode='fan_out', nonlinearity='relu')
        else:
            nn.init.xavier_uniform_(conv.weight)
        nn.init.zeros_(conv.bias)
        return conv

    def cam_logits(self, img: torch.Tensor) -> torch.Tensor:
        """S_k = W_k * X_hat (+ b_k with ``cam_bias``), (B, K, h, w)."""
        feat = self.extract_feat(img)
        bias = self.classifier.bias if self.cam_bias else None
        return F.conv2d(feat, self.classifier.weight, bias)

    def forward(self, img: torch.Tensor, labels: Optional[torch.Tensor] = None,
                mode: str = 'tensor', **kwargs):
        if mode != 'loss' or self.loss_name == 'multilabel_soft_margin':
            return super().forward(img, labels, mode, **kwargs)
        if labels is None:
            raise ValueError("mode='loss' needs the image-level 'labels' in the batch")
        if not torch.all(labels.sum(dim=1) == 1):
            raise ValueError("loss='cross_entropy' needs exactly one class per image (a one-hot "
                             "label vector); use loss='multilabel_soft_margin' for multi-label "
                             'data')
        return {'loss_cls': F.cross_entropy(self.logits(img), labels.argmax(dim=1))}
