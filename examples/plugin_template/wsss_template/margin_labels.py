"""MarginLabels: background threshold plus an ignore band where two classes compete.

With the normalised CAMs ``M_k`` of the image's classes and a background score
``M_0 = threshold`` (constant), each pixel x gets

    y(x) = 255                      if  M_(1)(x) - M_(2)(x) < margin   (ambiguous)
    y(x) = c_(1) + 1  or  0         otherwise (the top score's class, 0 for background)

where ``M_(1) >= M_(2)`` are the two largest of ``(M_0, M_1, ..., M_K)`` at x and
``c_(1)`` is the 0-based class of the largest.  ``margin = 0`` gives the plain background
threshold (irn/psa); a positive margin trades recall for precision of the pseudo labels.
"""
from __future__ import annotations

import numpy as np

from wsss_core.io import IGNORE_INDEX
from wsss_core.refiners.base import LabelRefiner
from wsss_core.registry import LABEL_REFINERS


@LABEL_REFINERS.register_module()
class MarginLabels(LabelRefiner):
    """Args:
        threshold: the constant background score ``M_0``.
        margin: pixels whose two best scores differ by less than this are ignored (255).
    """

    def __init__(self, threshold: float = 0.25, margin: float = 0.1):
        if not 0 <= threshold <= 1:
            raise ValueError(f'MarginLabels: threshold must lie in [0, 1], got {threshold}')
        if margin < 0:
            raise ValueError(f'MarginLabels: margin must be >= 0, got {margin}')
        self.threshold, self.margin = float(threshold), float(margin)

    def refine(self, sample: dict) -> dict:
        cams = np.asarray(sample['cams'], np.float32)              # (K, H, W)
        ids = np.asarray(sample['class_ids'], np.int64)            # (K,)
        scores = np.concatenate([np.full((1, *cams.shape[1:]), self.threshold, np.float32),
                                 cams])
        order = np.argsort(-scores, axis=0, kind='stable')
        best = np.take_along_axis(scores, order[:1], 0)[0]
        second = np.take_along_axis(scores, order[1:2], 0)[0] if len(scores) > 1 else best - 1
        classes = np.concatenate([[0], ids + 1]).astype(np.uint8)  # 0 = background
        label = classes[order[0]]
        label[best - second < self.margin] = IGNORE_INDEX
        return dict(sample, label=label.astype(np.uint8))

    def __repr__(self) -> str:
        return f'MarginLabels(threshold={self.threshold}, margin={self.margin})'
