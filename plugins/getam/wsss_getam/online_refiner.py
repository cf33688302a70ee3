"""GETAM's online pseudo labels as a label refiner, to score them offline (steps 3-7 of
``docs/methods/getam.md#25-online-pseudo-labels``).

In training the labels are made on each 256 x 256 crop from the GETAM maps of the moment
(:class:`~wsss_getam.joint_phase.GETAMJointLoss`); to measure their quality, a
``RefineLabels`` chain applies the same rule to a ``MakeCAMs(generator=GETAMCAM)`` stage's
maps of whole training images with the trained model:
``[PAMRRefiner, GETAMOnlineLabels]`` (PAMR on the maps, then this refiner).
"""
from __future__ import annotations

import numpy as np
import torch

from wsss_core.refiners.base import LabelRefiner
from wsss_core.registry import LABEL_REFINERS

from .online_labels import online_pseudo_labels

__all__ = ['GETAMOnlineLabels']


@LABEL_REFINERS.register_module()
class GETAMOnlineLabels(LabelRefiner):
    """``online_pseudo_labels`` on one image's CAMs (K, H, W) and saliency; writes ``label``
    (0 background from saliency only, class ids + 1, 255 ignore)."""

    needs = ('saliency',)

    def __init__(self, bg_power: float = 32, cut_threshold: float = 0.9, opening: int = 10):
        self.options = dict(bg_power=float(bg_power), cut_threshold=float(cut_threshold),
                            opening=int(opening))

    def refine(self, sample: dict) -> dict:
        cams = torch.from_numpy(np.asarray(sample['cams'], dtype=np.float32))[None]
        ids = np.asarray(sample['class_ids'], dtype=np.int64)
        saliency = torch.from_numpy(np.asarray(sample['saliency']))[None]
        if saliency.shape[-2:] != cams.shape[-2:]:
            raise ValueError(f"saliency of {sample.get('img_id')} is {tuple(saliency.shape[-2:])},"
                             f' its CAMs {tuple(cams.shape[-2:])}')
        present = torch.ones((1, cams.shape[1]))
        label = online_pseudo_labels(cams, present, saliency, **self.options).label[0].numpy()
        out = np.where((label > 0) & (label != 255), 0, label).astype(np.uint8)
        fg = (label > 0) & (label != 255)
        out[fg] = (ids[label[fg] - 1] + 1).astype(np.uint8)
        sample['label'] = out
        return sample
