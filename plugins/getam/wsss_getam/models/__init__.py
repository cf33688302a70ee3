"""GETAM's networks: the ViT encoder with attention capture (:mod:`.vit_backbone`), the DPT
decoder (:mod:`.dpt`) and the full model (:mod:`.getam_net`)."""
from .vit_backbone import BACKBONES, TINY_BACKBONES, GETAMViT, resize_grid_pos_embed

__all__ = ['BACKBONES', 'TINY_BACKBONES', 'GETAMViT', 'resize_grid_pos_embed']
