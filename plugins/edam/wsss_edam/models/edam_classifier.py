"""EDAM's classifier (Wu et al., CVPR 2021): backbone -> DA layer -> CMA, as described in
``docs/methods/edam.md`` §4 to §7 (the tags on the right).

    F     = backbone(x)                               (2P, D, h, w)
    Mhat  = |l2norm(conv3x3(F))|                      (2P, K + 1, h, w)   DA layer (§4)
    s     = CMA(F, Mhat[:, :K])                       (2P, K)             pairs 2p, 2p+1 (§5)
    L     = 1 / (2P K) sum_n sum_k BCE(sigmoid(s[n, k]), y[n, k])                      (§6)

Training batches are image pairs: ``img`` (2P, 3, H, W) where images 2p and 2p + 1 form pair
p, ``labels`` (2P, K) multi-hot.  At inference the CMA is dropped: :meth:`cam_logits` returns
the DA class masks ``Mhat[:, :K]`` (non-negative, at the backbone's stride), which the
core's ``CAM`` generator and :class:`~wsss_edam.models.da_masks.DAMasks` turn into CAMs.

Predict mode (``predict_scores``): the CMA logits of an image depend on its partner, so
validation batches of unrelated single images have no meaningful CMA score.  The default
``'da'`` scores image n, class k by the spatial mean of its DA mask, ``mean_xy Mhat_k`` in
[0, 1] (pair-free, the same maps that inference uses; mAP needs only a per-class ranking).
``'cma'`` instead returns ``sigmoid(s)`` with consecutive images taken as pairs (the batch
must be even; meaningful when the loader yields pairs).  ``'cma_self'`` scores the trained
classification head without a partner: each image is paired with itself, ``sigmoid(s_n)``
of the pair (x_n, x_n), so the cross-image attention attends within the image (pair-free;
the core's ``EvaluateClassifier`` stage sets it to score a finished classifier).

Optimiser groups (``docs/methods/edam.md#7-training``), by parameter-name prefix
(:data:`PARAM_GROUPS`):

=============== =========================================================== ===== ====
group           parameters                                                  lr    wd
=============== =========================================================== ===== ====
``backbone``    ``backbone.*``                                              x1    wd
``new``         ``da.conv.weight``, ``cma.reduce.weight``, ``cma.heads.*``  x10   wd
``transformer`` ``cma.segment_embedding.*``, ``cma.encoders.*``             x1    wd
=============== =========================================================== ===== ====

:meth:`EDAMClassifier.param_groups` builds them (parameters with ``requires_grad=False``,
e.g. frozen BN or frozen early blocks, are left out).
"""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel

from wsss_core.registry import MODELS, build

from .collaborative_attention import CollaborativeMultiAttention
from .discriminative_activation import DiscriminativeActivation

__all__ = ['EDAMClassifier', 'PARAM_GROUPS', 'PARAM_GROUP_LR_MULT', 'param_group_of']

#: group name -> parameter-name prefixes (see the module docstring)
PARAM_GROUPS = {
    'backbone': ('backbone.',),
    'new': ('da.', 'cma.reduce.', 'cma.heads.'),
    'transformer': ('cma.segment_embedding.', 'cma.encoders.'),
}
#: reference lr multipliers of the groups (weight decay is the same for all three)
PARAM_GROUP_LR_MULT = {'backbone': 1.0, 'new': 10.0, 'transformer': 1.0}
PREDICT_SCORES = ('da', 'cma', 'cma_self')


def param_group_of(name: str) -> str:
    """The optimiser group of parameter ``name`` of an :class:`EDAMClassifier`."""
    for group, prefixes in PARAM_GROUPS.items():
        if name.startswith(prefixes):
            return group
    raise KeyError(f'parameter {name!r} belongs to no EDAM parameter group')


@MODELS.register_module()
class EDAMClassifier(BaseModel):
    """Backbone + discriminative activation + collaborative multi-attention.

    Args:
        backbone: config of any registered backbone exposing ``out_channels``
            (ResNet-38 in the paper).
        num_classes: K (20 for VOC).
        cma: keyword arguments of :class:`CollaborativeMultiAttention` (``embed_dims``,
            ``num_heads``, ``ffn_dims``, ``dropout``, ``attn_dropout``, ``attention``...).
        predict_scores: ``'da'`` (default), ``'cma'`` or ``'cma_self'``, see the module
            docstring (may be changed later on the built model, still checked).
        data_preprocessor: default ``NormalizeImages`` (ImageNet mean / std).

    ``forward(img, labels, mode)``: ``'loss'`` -> ``{'loss_cls'}`` (pairs needed);
    ``'predict'`` -> a list of ``{'scores', 'labels'}`` per image; ``'tensor'`` -> the CMA
    logits (2P, K) (pairs needed).
    """

    def __init__(self, backbone: dict, num_classes: int, cma: Optional[dict] = None,
                 predict_scores: str = 'da', data_preprocessor: Optional[dict] = None,
                 init_cfg=None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='NormalizeImages')
        super().__init__(data_preprocessor=build(data_preprocessor, MODELS), init_cfg=init_cfg)
        self.predict_scores = predict_scores
        self.backbone = build(backbone, MODELS)
        self.num_classes = int(num_classes)
        channels = self.backbone.out_channels
        self.da = DiscriminativeActivation(channels, self.num_classes)
        self.cma = CollaborativeMultiAttention(channels, self.num_classes, **dict(cma or {}))

    @property
    def predict_scores(self) -> str:
        return self._predict_scores

    @predict_scores.setter
    def predict_scores(self, value: str) -> None:
        if value not in PREDICT_SCORES:
            raise ValueError(f'predict_scores must be one of {PREDICT_SCORES}, not {value!r}')
        self._predict_scores = value

    @property
    def output_stride(self) -> int:
        return getattr(self.backbone, 'output_stride', 8)

    def extract_feat(self, img: torch.Tensor) -> torch.Tensor:
        return self.backbone(img)

    def da_masks(self, img: torch.Tensor) -> torch.Tensor:
        """All K + 1 normalised DA channels (B, K + 1, h, w), channel K the background."""
        return self.da(self.extract_feat(img))

    def cam_logits(self, img: torch.Tensor) -> torch.Tensor:
        """The class masks ``Mhat[:, :K]`` (B, K, h, w), in [0, 1]: EDAM's CAMs
        (``docs/methods/edam.md#8-inference-and-pseudo-labels``)."""
        return self.da_masks(img)[:, :self.num_classes]

    def logits(self, img: torch.Tensor) -> torch.Tensor:
        """CMA logits (2P, K) of a batch of consecutive pairs."""
        feat = self.extract_feat(img)
        return self.cma(feat, self.da(feat)[:, :self.num_classes])

    def scores(self, img: torch.Tensor) -> torch.Tensor:
        """Per-image class scores (B, K) in [0, 1] for ``mode='predict'``."""
        if self.predict_scores == 'cma':
            return torch.sigmoid(self.logits(img))
        if self.predict_scores == 'cma_self':
            return torch.sigmoid(self.logits(torch.repeat_interleave(img, 2, dim=0))[::2])
        return self.cam_logits(img).mean(dim=(2, 3))

    def forward(self, img: torch.Tensor, labels: Optional[torch.Tensor] = None,
                mode: str = 'tensor', **kwargs):
        if mode == 'loss':
            if labels is None:
                raise ValueError("mode='loss' needs the image-level 'labels' in the batch")
            logits = self.logits(img)
            return {'loss_cls': F.binary_cross_entropy_with_logits(
                logits, labels.to(logits.dtype))}
        if mode == 'predict':
            scores = self.scores(img)
            if labels is None:
                labels = torch.zeros_like(scores)
            return [dict(scores=s, labels=y) for s, y in zip(scores, labels)]
        return self.logits(img)

    def named_param_groups(self) -> Dict[str, list]:
        """``{group: [(name, param), ...]}`` over the trainable parameters."""
        groups: Dict[str, list] = {g: [] for g in PARAM_GROUPS}
        for name, param in self.named_parameters():
            if param.requires_grad:
                groups[param_group_of(name)].append((name, param))
        return groups

    def param_groups(self, lr: float, weight_decay: float = 0.0,
                     lr_mults: Optional[dict] = None) -> List[dict]:
        """Optimiser param groups (``docs/methods/edam.md#7-training``): lr x
        ``PARAM_GROUP_LR_MULT`` (overridable by ``lr_mults``), the same weight decay for all;
        each dict carries ``name``/``lr_mult``."""
        mults = dict(PARAM_GROUP_LR_MULT, **dict(lr_mults or {}))
        out = []
        for group, named in self.named_param_groups().items():
            if named:
                out.append(dict(name=group, params=[p for _, p in named], lr=lr * mults[group],
                                weight_decay=weight_decay, lr_mult=mults[group]))
        return out
