"""The segmentor base shared by DeepLab v2 and v3+: backbone -> head (-> MSC), loss, predict.

``forward(img, gt_seg=None, pseudo_seg=None, mode)`` with ``img`` the normalised batch
(the data preprocessor ran) and the label map ``pseudo_seg`` (preferred) or ``gt_seg``
(B, H, W, values 0..C, 255 ignore):

* ``'loss'``: the network's outputs (with MSC: full scale, each extra scale and the max
  fusion), each scored by :func:`~.seg_loss.multi_output_loss` against the label map
  resized to it by PIL nearest.  A batch without any labelled pixel gives zero loss (not
  NaN) and is counted: ``num_ignored_batches`` (a running count, logged with the losses).
* ``'predict'`` / ``'tensor'``: the fused scores (MSC max in evaluation) bilinearly
  upsampled (``align_corners=False``) to the input size, (B, K, H, W) with K = classes
  including background.

:meth:`fused_logits` gives the scores at the output stride (what TestSegmentor stores).
"""
from __future__ import annotations

import copy
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel

from wsss_core.registry import MODELS, build

from .msc import msc_forward
from .seg_loss import IGNORE_INDEX, multi_output_loss

__all__ = ['DeepLabSegmentor', 'INPUT_STYLES']

#: input_style -> default data preprocessor
INPUT_STYLES = {
    'imagenet': dict(type='NormalizeImages'),  # RGB, (x / 255 - mean) / std: torchvision/timm
    'caffe': dict(type='CaffeNormalize'),      # BGR, x - mean (0..255): the COCO DeepLab weights
}


class DeepLabSegmentor(BaseModel):
    """Backbone + decode head (built by :meth:`build_head`) with optional MSC.

    Args:
        backbone: backbone config (MODELS), e.g. ``dict(type='DeepLabResNet', depth=101)``;
            it returns a list of feature maps (or one tensor) and has ``out_channels``.
        num_classes: output classes **including background** (21 for VOC).
        msc_scales: extra input scales fused by pixel-wise max (v2 reference: 0.5, 0.75);
            empty for a single-scale network.
        input_style: ``'imagenet'`` or ``'caffe'``, the default data preprocessor
            (:data:`INPUT_STYLES`); ``data_preprocessor`` overrides it.
        init_checkpoint: a whole-model checkpoint (e.g. the converted COCO DeepLab) loaded by
            :func:`~.weights.load_segmentor_weights`; ``load_head`` also loads the head when
            its shapes fit.
        ignore_index: the label value without loss (255).
        loss_weights: weight per output (default 1 each).
    """

    def __init__(self, backbone: dict, num_classes: int, msc_scales: Sequence[float] = (),
                 input_style: str = 'imagenet', data_preprocessor: Optional[dict] = None,
                 init_checkpoint: Optional[str] = None, load_head: bool = False,
                 ignore_index: int = IGNORE_INDEX, loss_weights: Optional[Sequence[float]] = None,
                 init_cfg=None):
        if input_style not in INPUT_STYLES:
            raise ValueError(f'input_style must be one of {sorted(INPUT_STYLES)}, '
                             f'not {input_style!r}')
        preprocessor = copy.deepcopy(data_preprocessor or INPUT_STYLES[input_style])
        super().__init__(data_preprocessor=build(preprocessor, MODELS), init_cfg=init_cfg)
        self.backbone = build(backbone, MODELS)
        self.num_classes = int(num_classes)
        if self.num_classes < 2:
            raise ValueError(f'num_classes counts background too; got {num_classes}')
        self.msc_scales = tuple(float(s) for s in (msc_scales or ()))
        self.ignore_index = int(ignore_index)
        n_out = 1 + (len(self.msc_scales) + 1 if self.msc_scales else 0)
        if loss_weights is not None and len(loss_weights) != n_out:
            raise ValueError(f'loss_weights needs {n_out} entries (one per output), '
                             f'got {len(loss_weights)}')
        self.loss_weights = None if loss_weights is None else tuple(map(float, loss_weights))
        self.decode_head = self.build_head()
        self.num_ignored_batches = 0
        self.init_report = None
        if init_checkpoint:
            from .weights import load_segmentor_weights
            self.init_report = load_segmentor_weights(self, init_checkpoint, load_head=load_head)

    # ------------------------------------------------------------------ network
    def build_head(self) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def output_stride(self) -> int:
        return int(getattr(self.backbone, 'output_stride', 8))

    def extract_feat(self, img: torch.Tensor) -> List[torch.Tensor]:
        feats = self.backbone(img)
        return list(feats) if isinstance(feats, (list, tuple)) else [feats]

    def base_forward(self, img: torch.Tensor) -> torch.Tensor:
        """Scores of one input scale at the output stride, (B, K, h, w)."""
        return self.decode_head(self.extract_feat(img))

    def output_names(self) -> List[str]:
        """Names of the training outputs: ``x1``, ``x<scale>`` per MSC scale, ``max``."""
        if not self.msc_scales:
            return ['x1']
        return ['x1'] + [f'x{s:g}' for s in self.msc_scales] + ['max']

    def multi_logits(self, img: torch.Tensor) -> List[torch.Tensor]:
        """All training outputs (see :mod:`.msc`), each at its own size."""
        return msc_forward(self.base_forward, img, self.msc_scales, training=True)

    def fused_logits(self, img: torch.Tensor) -> torch.Tensor:
        """The evaluation output: MSC max fusion (or the single scale) at the output stride."""
        return msc_forward(self.base_forward, img, self.msc_scales, training=False)

    # ------------------------------------------------------------------ modes
    def loss(self, img: torch.Tensor, target: torch.Tensor) -> dict:
        outputs = self.multi_logits(img)
        losses = multi_output_loss(outputs, target, self.output_names(), self.loss_weights,
                                   self.ignore_index)
        if not bool((target != self.ignore_index).any()):
            self.num_ignored_batches += 1
        losses['num_ignored_batches'] = torch.tensor(float(self.num_ignored_batches),
                                                     device=img.device)
        return losses

    def predict_logits(self, img: torch.Tensor) -> torch.Tensor:
        """Fused scores upsampled to the input size, (B, K, H, W)."""
        logits = self.fused_logits(img)
        return F.interpolate(logits, size=img.shape[-2:], mode='bilinear', align_corners=False)

    def forward(self, img: torch.Tensor, gt_seg: Optional[torch.Tensor] = None,
                pseudo_seg: Optional[torch.Tensor] = None, mode: str = 'tensor', **kwargs
                ) -> Union[dict, torch.Tensor]:
        if mode == 'loss':
            target = pseudo_seg if pseudo_seg is not None else gt_seg
            if target is None:
                raise ValueError("mode='loss' needs a label map in the batch: 'pseudo_seg' "
                                 "or 'gt_seg'")
            return self.loss(img, target.to(img.device))
        if mode in ('predict', 'tensor'):
            return self.predict_logits(img)
        raise ValueError(f"unknown mode {mode!r}: use 'loss', 'predict' or 'tensor'")
