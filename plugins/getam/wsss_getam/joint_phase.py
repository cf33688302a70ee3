"""GETAM's joint phase (``docs/methods/getam.md`` §2.5-2.6): online pseudo labels from the
network's own GETAM maps, then the segmentation losses next to the classification loss, on one
batch.

For a batch (normalised images x, raw RGB images I, labels y, saliency s, crop ROI r):

1. ``M = GETAM(x, y)`` (:func:`~wsss_getam.getam_map.getam_maps`: the maps of the labelled
   classes from the gradients of the class logits; no parameter gradient);
2. ``M' = PAMR(I, M)`` (10 iterations, dilations 1/2/4/8/12/24);
3. ``Y = online_pseudo_labels(M', y, s)`` (background power 32 from saliency only, 90th-
   percentile completion, 10 x 10 opening);
4. ``(z_cls, z_seg) = net(x)`` (the training forward, one encoder pass), and

       L = L_cls(z_cls, y) + L_splitCE(z_seg, Y) + L_sal(z_seg, s) + L_dCRF(I, softmax z_seg, r, Y)

   each with weight 1 (the dense-CRF term carries its own 1e-7); ``saliency_loss=None`` or
   ``dense_energy=None`` drops a term.

The reference computes M from a separate class-only forward and then runs the training
forward; so does this (step 1 runs the blocks before ``start_layer`` without autograd, which
changes no value).  The labels (steps 1-3) carry no gradient.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from wsss_core.refiners.pamr import PAMR

from .getam_map import getam_maps
from .losses.dense_energy import DenseEnergyLoss
from .losses.saliency_loss import SaliencyLoss
from .losses.split_ce import SplitCrossEntropyLoss
from .online_labels import online_pseudo_labels

__all__ = ['GETAMJointLoss']


class GETAMJointLoss(nn.Module):
    """The joint phase's losses of a ``GETAMNet`` on one batch (see the module docstring).

    Args:
        start_layer: first block of the GETAM sum (6: the last six of twelve).
        pamr: :class:`~wsss_core.refiners.pamr.PAMR` options (None: no refinement).
        bg_power, cut_threshold, opening: online pseudo-label constants (32, 0.9, 10).
        saliency_loss: :class:`SaliencyLoss` options (``mode='intended'`` by default;
            ``'reference'`` reproduces the released code's target), None to drop the term.
        dense_energy: :class:`DenseEnergyLoss` options (weight 1e-7, sigma_rgb 15, sigma_xy
            100, scale 0.5), None to drop the term.
    """

    def __init__(self, start_layer: int = 6,
                 pamr: Optional[dict] = dict(num_iter=10, dilations=(1, 2, 4, 8, 12, 24)),
                 bg_power: float = 32, cut_threshold: float = 0.9, opening: int = 10,
                 saliency_loss: Optional[dict] = dict(mode='intended'),
                 dense_energy: Optional[dict] = dict(weight=1e-7)):
        super().__init__()
        self.start_layer = int(start_layer)
        self.pamr = PAMR(**pamr) if pamr is not None else None
        self.label_options = dict(bg_power=float(bg_power), cut_threshold=float(cut_threshold),
                                  opening=int(opening))
        self.seg_loss = SplitCrossEntropyLoss()
        self.saliency_loss = SaliencyLoss(**saliency_loss) if saliency_loss is not None else None
        self.dense_energy = DenseEnergyLoss(**dense_energy) if dense_energy is not None else None

    @torch.no_grad()
    def pseudo_labels(self, model, img: torch.Tensor, raw: torch.Tensor, labels: torch.Tensor,
                      saliency: torch.Tensor):
        """Steps 1-3: ``OnlinePseudoLabels`` of the batch (no gradient)."""
        with torch.enable_grad():
            maps = getam_maps(model.cls_logits, model.backbone, img, labels, self.start_layer)
        if self.pamr is not None:
            maps = self.pamr(raw, maps)
        return online_pseudo_labels(maps, labels, saliency, **self.label_options)

    def forward(self, model, img: torch.Tensor, raw: torch.Tensor, labels: torch.Tensor,
                saliency: torch.Tensor, valid: Optional[torch.Tensor] = None
                ) -> Dict[str, torch.Tensor]:
        if saliency is None:
            raise ValueError("GETAM's joint phase needs the saliency map of every training "
                             "image in the batch ('saliency'): give the dataset saliency_dir="
                             ' (SyntheticShapes has it built in)')
        online = self.pseudo_labels(model, img, raw, labels, saliency)
        cls_logits, seg_logits = model.forward_both(img)
        losses = {'loss_cls': F.multilabel_soft_margin_loss(cls_logits, labels.float()),
                  'loss_seg': self.seg_loss(seg_logits, online.label)}
        if self.saliency_loss is not None:
            losses['loss_sal'] = self.saliency_loss(seg_logits, online.salient, online.completed)
        if self.dense_energy is not None:
            roi = torch.ones_like(online.label, dtype=torch.float32) if valid is None \
                else valid.float()
            losses['loss_dcrf'] = self.dense_energy(raw, seg_logits.softmax(1), roi,
                                                    online.label)
        return losses
