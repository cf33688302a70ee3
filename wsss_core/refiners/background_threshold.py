"""Constant background threshold (psa/irn): label = argmax over [t, M_1, ..., M_K]."""
from __future__ import annotations

from ..evaluation.cam_labels import cam_to_label
from ..registry import LABEL_REFINERS
from .base import LabelRefiner


@LABEL_REFINERS.register_module()
class BackgroundThreshold(LabelRefiner):
    """Pixel x is background iff max_k M_k(x) <= t; otherwise class argmax_k M_k(x).

    ``threshold`` 0.25 is the best fixed value on SyntheticShapes; psa uses 0.2, irn 0.15.
    """

    def __init__(self, threshold: float = 0.25):
        self.threshold = float(threshold)

    def refine(self, sample: dict) -> dict:
        sample['label'] = cam_to_label(sample['cams'], sample['class_ids'], self.threshold)
        return sample
