"""EDAM's CAMs: the normalised DA class masks (Wu et al., CVPR 2021;
``docs/methods/edam.md#8-inference-and-pseudo-labels``, step 2).

    CAM_k(x, y) = Mhat_k(x, y) = | M_k / max(||M(x, y)||_2, 1e-12) |      k < K

i.e. the backbone + DA layer only (the CMA is not used at inference).  The masks are already
non-negative, so no ReLU; multi-scale + flip summation and the per-class max normalisation
(step 3) are the core's (``multiscale_cams`` / ``normalize_cams`` / ``MakeCAMs``).
"""
from __future__ import annotations

import torch

from wsss_core.cams.base import BaseCAMGenerator
from wsss_core.registry import CAM_GENERATORS

__all__ = ['DAMasks']


@CAM_GENERATORS.register_module()
class DAMasks(BaseCAMGenerator):
    """Class maps of a model exposing ``cam_logits(img) -> (B, K, h, w)`` non-negative masks
    (:class:`~wsss_edam.models.edam_classifier.EDAMClassifier`)."""

    def class_maps(self, model, img: torch.Tensor, class_ids=None) -> torch.Tensor:
        return model.cam_logits(img)
