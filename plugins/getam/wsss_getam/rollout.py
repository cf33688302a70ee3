"""Attention rollout (Abnar & Zuidema, ACL 2020, section 3) as a CAM generator, the
class-agnostic baseline the GETAM paper compares with.

With A_l block l's post-softmax attention averaged over heads and I the identity,

    Ã_l = (A_l + I) / 2,   Ã_l <- Ã_l / rowsum(Ã_l),   R = Ã_{L-1} Ã_{L-2} ... Ã_0

and the map is the class-token row of R over the patch columns (two leading tokens skipped on
DeiT-distilled), reshaped to the token grid and upsampled bilinearly (align_corners=True).
It has no class: every requested class gets the same map (absent classes zeros).
"""
from __future__ import annotations

import torch

from wsss_core.cams.base import BaseCAMGenerator
from wsss_core.registry import CAM_GENERATORS

from .getam_map import fit_to_multiple, readout_class_token_row, upsample_maps

__all__ = ['AttentionRolloutCAM', 'attention_rollout']


def attention_rollout(attentions, start_layer: int = 0) -> torch.Tensor:
    """R (B, N, N) from per-block attentions (B, heads, N, N), blocks ``start_layer``.. on."""
    rollout = None
    for attn in attentions[start_layer:]:
        a = attn.float().mean(dim=1)
        eye = torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
        a = (a + eye) / 2
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a if rollout is None else a @ rollout
    return rollout


@CAM_GENERATORS.register_module()
class AttentionRolloutCAM(BaseCAMGenerator):
    """Attention rollout maps for a model with a ``GETAMViT`` (dotted path ``backbone``)."""

    def __init__(self, start_layer: int = 0, size_divisor: int = 32,
                 backbone: str = 'backbone'):
        self.start_layer = int(start_layer)
        self.size_divisor = int(size_divisor)
        self.backbone = backbone

    def class_maps(self, model, img: torch.Tensor, class_ids=None) -> torch.Tensor:
        vit = model.get_submodule(self.backbone)
        x = fit_to_multiple(img, self.size_divisor)
        with torch.no_grad(), vit.capturing_attention():
            logits = model.cls_logits(x)
            rollout = attention_rollout(vit.attentions, self.start_layer)
        vit.clear_captured()
        grid = vit.grid_of(x)
        row = readout_class_token_row(rollout[:, 0], vit.num_prefix_tokens, grid)  # (B, h, w)
        maps = row[:, None].expand(-1, logits.shape[1], -1, -1).clone()
        if class_ids is not None:
            keep = torch.zeros_like(maps[:, :, :1, :1])
            for b, ids in enumerate(class_ids):
                keep[b, list(ids)] = 1
            maps = maps * keep
        return upsample_maps(maps, img.shape[-2:])
