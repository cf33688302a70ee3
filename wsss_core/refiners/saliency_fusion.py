"""Saliency fusion, the common rule: background where saliency is low, CAM argmax elsewhere.

    label(x) = 0                                 if S(x) < tau
             = class_ids[argmax_k M_k(x)] + 1    otherwise

with S the saliency map in [0, 1] and tau = ``threshold`` (0.5).  Method-specific rules
(OAA's proxy labels, EDAM's theta/alpha/beta fusion) live in their plugins.

Where S comes from: by default the dataset's ``sample['saliency']``; with ``source`` (a
SALIENCY_SOURCES config or object: maps on disk, an OpenCV estimator) it is computed or
loaded from the sample's ``img_id`` and ``img``.
"""
from __future__ import annotations

from typing import Optional, Union

import numpy as np

from .. import saliency as _saliency  # noqa: F401  (registers the SALIENCY_SOURCES)
from ..evaluation.cam_labels import cam_max_argmax
from ..registry import LABEL_REFINERS, SALIENCY_SOURCES, build
from .base import LabelRefiner


class SaliencyRefiner(LabelRefiner):
    """Base of refiners that read a saliency map (SaliencyFusion, OAA's proxy labels, EDAM's
    fusion): ``source`` is None (the dataset's ``saliency``) or a SALIENCY_SOURCES config /
    object, and the refiner then ``needs`` what the source reads (``img`` for disk and
    OpenCV)."""

    needs = ('saliency',)

    def __init__(self, source: Optional[Union[dict, object]] = None):
        self.source = build(source, SALIENCY_SOURCES) if source is not None else None
        if self.source is not None:
            self.needs = tuple(getattr(self.source, 'needs', ('img',)))

    def saliency(self, sample: dict) -> np.ndarray:
        """S of the sample as uint8 (H, W): the dataset's, or the source's."""
        if self.source is None:
            return np.asarray(sample['saliency'])
        if hasattr(self.source, 'from_sample'):
            return self.source.from_sample(sample)
        return np.asarray(self.source(sample['img_id'], sample['img']))  # a plain callable


@LABEL_REFINERS.register_module()
class SaliencyFusion(SaliencyRefiner):
    """The rule above; an image without CAMs (no class) is all background.

    Args:
        threshold: tau, on the [0, 1] scale (S = saliency / 255).
        source: see :class:`SaliencyRefiner`.
    """

    def __init__(self, threshold: float = 0.5, source: Optional[Union[dict, object]] = None):
        super().__init__(source)
        self.threshold = float(threshold)

    def refine(self, sample: dict) -> dict:
        sal = self.saliency(sample).astype(np.float32) / 255.0
        cams = sample['cams']
        if sal.shape != cams.shape[1:]:
            raise ValueError(f"saliency of {sample['img_id']} is {sal.shape}, "
                             f'CAMs {cams.shape[1:]}')
        _, fg = cam_max_argmax(cams, sample['class_ids'])
        salient = sal >= self.threshold
        sample['label'] = np.where(salient & (len(sample['class_ids']) > 0), fg, 0).astype(np.uint8)
        return sample

    def __repr__(self) -> str:
        return f'SaliencyFusion(threshold={self.threshold}, source={self.source!r})'
