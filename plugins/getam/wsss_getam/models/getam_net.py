"""GETAM's network (``docs/methods/getam.md#23-the-network``): one ViT encoder pass feeds a class
head and a DPT segmenter.

    hooks = ViT(img)                                 4 hooks (tokens, or ResNet maps on hybrid)
    l_1..l_4 = Reassemble(hooks)                     strides 4, 8, 16, 32 (DPT, Ranftl et al. 2021)
    cls  = W_c GAP(l_4) + b_c                        (B, C)        the classification head
    seg  = Head(SE(DPTDecoder(l_1..l_4)))            (B, C+1, H, W) background + C classes

The class head reads the hook-4 reassembled map, not the class token (the token reaches it
through attention and the project readout).  Its input width is that map's channel count
(768 for ViT-B, 1024 for ViT-L), not a fixed 768: the reference's ``Linear(768, 20)`` breaks
``vitl`` (``docs/methods/getam.md#22-backbones``).

Training (``docs/methods/getam.md`` §2.1, §2.7) has two phases, set by ``model.phase``
(``'cls'`` or ``'joint'``; :class:`~wsss_getam.hooks.GETAMScheduleHook` switches it from the
iteration): the classification phase's loss is the multilabel soft-margin loss on the class
logits; the joint phase's (:class:`~wsss_getam.joint_phase.GETAMJointLoss`, from ``joint=``)
adds the segmentation losses on online pseudo labels made from the network's own GETAM maps.
All parameters form one optimizer group (the reference's setting), so the model defines no
parameter groups: mmengine's default optimizer constructor gives exactly one.

Inference (``docs/methods/getam.md#28-inference``): :meth:`GETAMNet.fused_logits` averages the
segmentation logits over square resizes of the image to ``test_sizes`` (256, 320, 480; aspect
not kept), each resized back bilinearly (align_corners=False) to the image size; DeepLab's
``TestSegmentor`` calls it and runs the dense CRF.

``forward(img, labels, mode)``:

* ``'tensor'``: ``(cls_logits (B, C), seg_logits (B, C+1, H, W))``;
* ``'predict'``: per image ``dict(scores=sigmoid(cls) (C,), labels=labels or zeros (C,),
  seg=argmax over the C+1 segmentation logits (H, W) int64, 0 = background)``; the label
  map, not the logits, to keep predictions small (``seg_logits`` gives the logits);
* ``'loss'``: ``{'loss_cls'}`` in the classification phase; in the joint phase the losses of
  :class:`~wsss_getam.joint_phase.GETAMJointLoss` (the batch must hold ``saliency`` and
  should hold ``valid``, the crop's image pixels).

The encoder's input height and width must be multiples of 32 (the 4th level is at stride 32):
:meth:`GETAMNet.encode`, the training losses and the single-size heads refuse other sizes.
The whole-image entry points, ``forward`` in the ``'predict'`` and ``'tensor'`` modes (a
training stage's validation on full images of any size) and :meth:`GETAMNet.cam_logits`
(the core's ``CAM`` generator), resize such an input to the nearest multiple of 32
(:func:`~wsss_getam.getam_map.fit_to_multiple`, as the GETAM and rollout maps do) and the
segmentation logits back to the input's size.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel

from wsss_core.models import data_preprocessor as _normalize  # noqa: F401 (registers NormalizeImages)
from wsss_core.registry import MODELS, build

from ..getam_map import fit_to_multiple
from ..joint_phase import GETAMJointLoss
from .dpt import DPTDecoder, Reassemble, SEBlock, SegmentationHead

__all__ = ['GETAMNet', 'INPUT_MULTIPLE']

#: input height and width must be multiples of this (patch 16, then one stride-2 conv)
INPUT_MULTIPLE = 32
#: what :class:`GETAMNet` needs from its backbone (the ``GETAMViT`` API)
BACKBONE_ATTRIBUTES = ('embed_dim', 'num_prefix_tokens', 'is_hybrid', 'hook_channels')


@MODELS.register_module()
class GETAMNet(BaseModel):
    """ViT encoder + DPT decoder + SE block + segmentation head + GAP class head.

    Args:
        backbone: config of a ``GETAMViT`` (or any module with its API: ``embed_dim``,
            ``num_prefix_tokens``, ``is_hybrid``, ``hook_channels`` and ``forward(img) ->
            dict(hooks=[t1..t4], grid=(h, w), ...)``).
        num_classes: C, the foreground classes (20 on VOC); the segmentation head has C + 1.
        features: the decoder width (256).
        reassemble_channels: the four reassembled widths; default from the backbone
            (:func:`~wsss_getam.models.dpt.default_reassemble_channels`).
        se_reduction: the SE block's reduction ratio (16).
        head_dropout: dropout of the segmentation head (0.1).
        joint: :class:`~wsss_getam.joint_phase.GETAMJointLoss` options for the joint phase
            (default: the reference's constants).
        test_sizes: the square input sizes :meth:`fused_logits` averages over.
        data_preprocessor: default ``NormalizeImages`` (ImageNet mean / std, for every
            backbone, as the reference; ``docs/methods/getam.md#22-backbones``).
    """

    def __init__(self, backbone: dict, num_classes: int = 20, features: int = 256,
                 reassemble_channels: Optional[Sequence[int]] = None, se_reduction: int = 16,
                 head_dropout: float = 0.1, joint: Optional[dict] = None,
                 test_sizes: Sequence[int] = (256, 320, 480),
                 data_preprocessor: Optional[dict] = None, init_cfg=None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='NormalizeImages')
        super().__init__(data_preprocessor=build(data_preprocessor, MODELS), init_cfg=init_cfg)
        self.backbone = build(backbone, MODELS)
        _check_backbone(self.backbone)
        self.num_classes = int(num_classes)
        self.reassemble = Reassemble(
            self.backbone.embed_dim, reassemble_channels, self.backbone.num_prefix_tokens,
            self.backbone.is_hybrid, self.backbone.hook_channels)
        self.decoder = DPTDecoder(self.reassemble.out_channels, features)
        self.se_block = SEBlock(features, se_reduction)
        self.seg_head = SegmentationHead(features, self.num_classes + 1, head_dropout)
        self.cls_head = nn.Linear(self.reassemble.out_channels[3], self.num_classes)
        self.joint_loss = GETAMJointLoss(**(joint or {}))
        self.test_sizes = tuple(int(s) for s in test_sizes)
        bad = [s for s in self.test_sizes if s % INPUT_MULTIPLE]
        if bad or not self.test_sizes:
            raise ValueError(f'test_sizes must be multiples of {INPUT_MULTIPLE}, got '
                             f'{self.test_sizes}')
        self.phase = 'cls'

    @property
    def phase(self) -> str:
        """``'cls'`` (classification loss only) or ``'joint'`` (all losses)."""
        return self._phase

    @phase.setter
    def phase(self, value: str) -> None:
        if value not in ('cls', 'joint'):
            raise ValueError(f"phase must be 'cls' or 'joint', got {value!r}")
        self._phase = value

    # -- one encoder pass -------------------------------------------------------------------
    def encode(self, img: torch.Tensor) -> Tuple[list, Tuple[int, int]]:
        """Run the backbone once: its four hooks and the token grid (h, w)."""
        h, w = img.shape[-2:]
        if h % INPUT_MULTIPLE or w % INPUT_MULTIPLE:
            raise ValueError(f'GETAMNet needs an input height and width that are multiples of '
                             f'{INPUT_MULTIPLE}, got {h}x{w}: crop or pad the image')
        out = self.backbone(img)
        return list(out['hooks']), tuple(out['grid'])

    def classify(self, level4: torch.Tensor) -> torch.Tensor:
        """Class logits from the hook-4 reassembled map: ``W_c GAP(l_4) + b_c`` (B, C)."""
        return self.cls_head(level4.mean(dim=(2, 3)))

    def segment(self, levels: Sequence[torch.Tensor]) -> torch.Tensor:
        """Segmentation logits (B, C+1, H, W) from the four reassembled maps."""
        return self.seg_head(self.se_block(self.decoder(levels)))

    # -- public heads -------------------------------------------------------------------------
    def cls_logits(self, img: torch.Tensor) -> torch.Tensor:
        """Class logits only (the reference's ``forward_cls``; the GETAM maps back-propagate
        these).  Reassembles hook 4 alone: the decoder is not run."""
        hooks, grid = self.encode(img)
        return self.classify(self.reassemble.level(3, hooks[3], grid))

    def cam_logits(self, img: torch.Tensor) -> torch.Tensor:
        """Plain CAM (B, C, h, w) at stride 32: the class head applied at every position of
        the hook-4 reassembled map, ``W_c l_4(x, y)`` (its GAP plus the bias are the logits);
        the core's ``CAM`` generator reads it (the baseline the GETAM map is compared with).
        Any input size: one that is not a multiple of 32 is resized to the nearest."""
        hooks, grid = self.encode(fit_to_multiple(img, INPUT_MULTIPLE))
        level4 = self.reassemble.level(3, hooks[3], grid)
        return torch.einsum('bdhw,cd->bchw', level4, self.cls_head.weight)

    def seg_logits(self, img: torch.Tensor) -> torch.Tensor:
        """Segmentation logits only (B, C+1, H, W) (inference)."""
        hooks, grid = self.encode(img)
        return self.segment(self.reassemble(hooks, grid))

    def forward_both(self, img: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(cls_logits (B, C), seg_logits (B, C+1, H, W))`` from one encoder pass."""
        hooks, grid = self.encode(img)
        levels = self.reassemble(hooks, grid)
        return self.classify(levels[3]), self.segment(levels)

    def whole_image_logits(self, img: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward_both` on an image of any size: one whose sides are not multiples of
        32 is resized to the nearest multiples and its segmentation logits back (bilinear,
        ``align_corners=False``)."""
        cls, seg = self.forward_both(fit_to_multiple(img, INPUT_MULTIPLE))
        if seg.shape[-2:] != img.shape[-2:]:
            seg = F.interpolate(seg, size=img.shape[-2:], mode='bilinear', align_corners=False)
        return cls, seg

    def fused_logits(self, img: torch.Tensor) -> torch.Tensor:
        """Mean segmentation logits (B, C+1, H, W) over square resizes to ``test_sizes``."""
        size = img.shape[-2:]
        total = 0
        for side in self.test_sizes:
            x = F.interpolate(img, size=(side, side), mode='bilinear', align_corners=False)
            y = self.seg_logits(x)
            total = total + F.interpolate(y, size=size, mode='bilinear', align_corners=False)
        return total / len(self.test_sizes)

    def raw_images(self, img: torch.Tensor) -> torch.Tensor:
        """The normalised batch back in RGB 0..255 (the reference's de-normalised crop; the
        padding shows the mean colour)."""
        pre = self.data_preprocessor
        return img.float() * pre.std + pre.mean

    def forward(self, img: torch.Tensor, labels: Optional[torch.Tensor] = None,
                mode: str = 'tensor', saliency: Optional[torch.Tensor] = None,
                valid: Optional[torch.Tensor] = None, **kwargs):
        if mode == 'loss':
            if labels is None:
                raise ValueError("mode='loss' needs the image-level 'labels' in the batch")
            if self.phase == 'joint':
                return self.joint_loss(self, img, self.raw_images(img), labels, saliency, valid)
            logits = self.cls_logits(img)
            return {'loss_cls': F.multilabel_soft_margin_loss(logits, labels.float())}
        if mode == 'predict':
            return self._predictions(*self.whole_image_logits(img), labels)
        if mode == 'tensor':
            return self.whole_image_logits(img)
        raise ValueError(f"unknown mode {mode!r}: use 'loss', 'predict' or 'tensor'")

    @staticmethod
    def _predictions(cls_logits: torch.Tensor, seg_logits: torch.Tensor,
                     labels: Optional[torch.Tensor]) -> List[dict]:
        scores = torch.sigmoid(cls_logits)
        if labels is None:
            labels = torch.zeros_like(scores)
        seg = seg_logits.argmax(dim=1)
        return [dict(scores=s, labels=y, seg=m) for s, y, m in zip(scores, labels, seg)]


def _check_backbone(backbone: nn.Module) -> None:
    missing = [a for a in BACKBONE_ATTRIBUTES if not hasattr(backbone, a)]
    if missing:
        raise TypeError(f'GETAMNet needs a GETAMViT-like backbone; '
                        f'{type(backbone).__name__} lacks {", ".join(missing)}')
