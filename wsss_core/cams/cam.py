"""Class activation mapping (Zhou et al., CVPR 2016): M_c = ReLU(sum_k w_{c,k} f_k)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.protocols import CAMModel
from ..registry import CAM_GENERATORS
from .base import BaseCAMGenerator


@CAM_GENERATORS.register_module()
class CAM(BaseCAMGenerator):
    """Plain CAM from a classifier exposing ``cam_logits(img) -> (B, C, h, w)``.

    ``relu=False`` gives the raw maps ``sum_k w_{c,k} f_k`` (negative values kept), which is
    what the WSOL protocol (wsolevaluation, MoANA) min-max normalises; pseudo-label stages
    need the default, non-negative maps.
    """

    model_protocol = CAMModel

    def __init__(self, relu: bool = True):
        self.relu = bool(relu)

    def class_maps(self, model, img: torch.Tensor, class_ids=None) -> torch.Tensor:
        maps = model.cam_logits(img)
        return F.relu(maps) if self.relu else maps
