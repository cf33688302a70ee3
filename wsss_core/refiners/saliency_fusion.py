"""Saliency fusion, the common rule: background where saliency is low, CAM argmax elsewhere.

    label(x) = 0                                 if S(x) < tau
             = class_ids[argmax_k M_k(x)] + 1    otherwise

with S the saliency map in [0, 1] and tau = ``threshold`` (0.5).  Method-specific rules
(OAA's proxy labels, EDAM's theta/alpha/beta fusion) live in their plugins.
"""
from __future__ import annotations

import numpy as np

from ..evaluation.cam_labels import cam_max_argmax
from ..registry import LABEL_REFINERS
from .base import LabelRefiner


@LABEL_REFINERS.register_module()
class SaliencyFusion(LabelRefiner):
    """The rule above; an image without CAMs (no class) is all background."""

    needs = ('saliency',)

    def __init__(self, threshold: float = 0.5):
        self.threshold = float(threshold)

    def refine(self, sample: dict) -> dict:
        sal = np.asarray(sample['saliency'], dtype=np.float32) / 255.0
        cams = sample['cams']
        if sal.shape != cams.shape[1:]:
            raise ValueError(f"saliency of {sample['img_id']} is {sal.shape}, CAMs {cams.shape[1:]}")
        _, fg = cam_max_argmax(cams, sample['class_ids'])
        salient = sal >= self.threshold
        sample['label'] = np.where(salient & (len(sample['class_ids']) > 0), fg, 0).astype(np.uint8)
        return sample
