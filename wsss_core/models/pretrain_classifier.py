"""PretrainClassifier: a backbone with a global-pooling linear head, trained single-label.

The network of the :class:`~wsss_core.pipeline.pretrain.Pretrain` stage, the stand-in for
ImageNet classification: ``logits = W * pool(backbone(x)) + b`` and the softmax
cross-entropy ``L = -log softmax(logits)[y]`` of the one class ``y`` of each image (the
argmax of its one-hot ``labels``).  Only the backbone's weights are kept afterwards; the head
is thrown away, as the ImageNet head is when a WSSS method starts from ImageNet weights.

``pool`` (:func:`pooled_features`) accepts what the registered backbones return: a feature
map (B, D, h, w) -> its spatial mean; tokens (B, N, D) -> their mean; a list or tuple of
maps (multi-level backbones) -> the last one, pooled; a dict with ``tokens`` (the ViT
backbones) -> the mean of the tokens after the prefix tokens (class / distillation).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel

from ..registry import MODELS, build


def pooled_features(out, num_prefix_tokens: int = 0) -> torch.Tensor:
    """One (B, D) vector per image from a backbone's output (see the module docstring)."""
    if isinstance(out, dict):
        if 'tokens' not in out:
            raise TypeError(f'a dict backbone output needs "tokens"; got keys {sorted(out)}')
        return out['tokens'][:, num_prefix_tokens:].mean(dim=1)
    if isinstance(out, (list, tuple)):
        out = out[-1]
    if out.dim() == 4:
        return out.mean(dim=(2, 3))
    if out.dim() == 3:
        return out.mean(dim=1)
    raise TypeError(f'cannot pool a backbone output of shape {tuple(out.shape)}')


def feature_width(backbone: nn.Module) -> int:
    """The width D of :func:`pooled_features`: ``out_channels``, else ``embed_dim``."""
    for attr in ('out_channels', 'embed_dim'):
        value = getattr(backbone, attr, None)
        if isinstance(value, int):
            return value
    raise TypeError(f'{type(backbone).__name__} declares neither out_channels nor embed_dim: '
                    'the pretraining head cannot know its input width')


@MODELS.register_module()
class PretrainClassifier(BaseModel):
    """``backbone`` + global pooling + a linear layer with bias, softmax cross-entropy.

    ``forward(img, labels, mode)``: ``'loss'`` -> ``{'loss_cls'}`` (cross-entropy on the
    argmax of the one-hot ``labels``, label smoothing ``label_smoothing``); ``'predict'`` -> a
    list of ``{'scores' (softmax), 'labels'}`` per image; ``'tensor'`` -> logits.
    """

    def __init__(self, backbone: dict, num_classes: int, label_smoothing: float = 0.0,
                 data_preprocessor: Optional[dict] = None, init_cfg=None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='NormalizeImages')
        super().__init__(data_preprocessor=build(data_preprocessor, MODELS), init_cfg=init_cfg)
        self.backbone = build(backbone, MODELS)
        self.num_prefix_tokens = int(getattr(self.backbone, 'num_prefix_tokens', 0))
        self.head = nn.Linear(feature_width(self.backbone), int(num_classes))
        self.num_classes = int(num_classes)
        self.label_smoothing = float(label_smoothing)

    def logits(self, img: torch.Tensor) -> torch.Tensor:
        return self.head(pooled_features(self.backbone(img), self.num_prefix_tokens))

    def forward(self, img: torch.Tensor, labels: Optional[torch.Tensor] = None,
                mode: str = 'tensor', **kwargs):
        logits = self.logits(img)
        if mode == 'loss':
            if labels is None:
                raise ValueError("mode='loss' needs the one-hot 'labels' in the batch")
            return {'loss_cls': F.cross_entropy(logits, labels.argmax(dim=1),
                                                label_smoothing=self.label_smoothing)}
        if mode == 'predict':
            scores = torch.softmax(logits.float(), dim=1)
            if labels is None:
                labels = torch.zeros_like(scores)
            return [dict(scores=s, labels=y) for s, y in zip(scores, labels)]
        return logits
