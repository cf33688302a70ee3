"""The inter-pixel relation network (IRNet; Ahn, Cho & Kwak, CVPR 2019).

A frozen multi-level backbone feeds two small trainable branches on the stride-4 grid:

* the **class-boundary branch**: per level a 1x1 conv + GroupNorm + ReLU to a few channels,
  brought to stride 4, concatenated, a 1x1 conv to one channel; its sigmoid ``B`` is the
  boundary map, from which pair affinities follow as ``a_ij = 1 - max_{k in path(i,j)} B_k``
  (:func:`wsss_core.irn.pairs.affinity_from_boundary`);
* the **displacement branch**: the deep levels fused at stride 8, upsampled and fused with the
  fine (stride-4) levels, 1x1 convs to a 2-channel displacement field ``D`` (each pixel's
  vector to its instance centroid).

Only the branches learn; the backbone is frozen (no gradient, kept in eval mode, features
computed without autograd), as in IRN.  The losses are in :mod:`wsss_core.irn.losses`.

Stride-4 grid: for an ``H x W`` input the maps are ``ceil(H/4) x ceil(W/4)``; cell ``(i, j)``
is centred on pixel ``(4i, 4j)`` (the ResNet stem: conv 7/2 pad 3, max-pool 3/2 pad 1).
Levels at stride 2 (timm's ``act1``, before the stem's max-pool) are max-pooled 3/2/1, which
gives exactly IRN's first level (the stem output after its max-pool); deeper levels are
upsampled bilinearly by their integer factor and cropped to the grid, as IRN does.
"""
from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel

from ..models import data_preprocessor  # noqa: F401  (registers NormalizeImages, the default)
from ..models.timm_backbone import load_state_dict_file
from ..registry import MODELS, build
from .affinity_labels import pair_labels, stride4_labels
from .losses import irn_loss_terms
from .pairs import affinity_from_boundary

__all__ = ['TimmFeatureLevels', 'BoundaryBranch', 'DisplacementBranch', 'InterPixelRelationNet',
           'stride4_grid', 'conv_gn_relu']

#: IRN's backbone: torchvision ResNet-50, strides (1, 2, 2, 1) without dilation (output stride
#: 16), all five feature levels, every BatchNorm frozen
DEFAULT_BACKBONE = dict(type='TorchvisionResNet', output_stride=16, out_indices=(0, 1, 2, 3, 4),
                        norm_eval=True)


# ----------------------------------------------------------------------------- backbone
@MODELS.register_module()
class TimmFeatureLevels(nn.Module):
    """A timm model's feature pyramid: ``timm.create_model(name, features_only=True)``.

    ``forward(x)`` returns the feature maps of ``out_indices`` (default all five levels; for
    ``resnet50`` at ``output_stride=16`` the strides are 2, 4, 8, 16, 16 and the channels 64,
    256, 512, 1024, 2048 -- timm dilates the last stage, where IRN's ResNet-50 uses stride 1
    without dilation: ``TorchvisionResNet(out_indices=(0, 1, 2, 3, 4))`` is that network).
    ``channels`` and ``reductions`` list them, as ``TorchvisionResNet`` does.

    Args:
        model_name: a timm model with ``features_only`` support.
        output_stride: 8, 16 or 32.
        out_indices: which levels.
        pretrained: timm's weights from the local cache only (nothing is downloaded).
        checkpoint: a local weight file (``.pth``/``.safetensors``), loaded non-strictly;
            the missing keys are kept in ``missing_keys``.
        **model_kwargs: passed to ``timm.create_model`` (tiny widths for tests, e.g.
            ``channels=(8, 16, 32, 64)`` for ``resnet18``).
    """

    def __init__(self, model_name: str = 'resnet50', output_stride: int = 16,
                 out_indices: Sequence[int] = (0, 1, 2, 3, 4), pretrained: bool = False,
                 checkpoint: Optional[str] = None, **model_kwargs):
        super().__init__()
        import timm
        os.environ.setdefault('HF_HUB_OFFLINE', '1')
        kwargs = dict(features_only=True, pretrained=pretrained,
                      out_indices=tuple(out_indices), **model_kwargs)
        if output_stride != 32:
            kwargs['output_stride'] = output_stride
        self.model = timm.create_model(model_name, **kwargs)
        self.channels = list(self.model.feature_info.channels())
        self.reductions = list(self.model.feature_info.reduction())
        self.out_channels, self.output_stride = self.channels[-1], self.reductions[-1]
        self.missing_keys: List[str] = []
        if checkpoint:
            state = load_state_dict_file(checkpoint)
            self.missing_keys = list(self.model.load_state_dict(state, strict=False).missing_keys)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        return list(self.model(x))


# ----------------------------------------------------------------------------- helpers
def stride4_grid(height: int, width: int) -> Tuple[int, int]:
    """``(ceil(H / 4), ceil(W / 4))``: the size of the boundary and displacement maps."""
    return -(-int(height) // 4), -(-int(width) // 4)


def group_count(channels: int, max_groups: int = 16) -> int:
    """GroupNorm groups for ``channels``: the largest divisor of ``channels`` that is at most
    ``min(max_groups, channels // 8)`` (IRN: 32 -> 4, 64 -> 8, 128 -> 16, 256 -> 16)."""
    limit = max(1, min(max_groups, channels // 8))
    return max(g for g in range(1, limit + 1) if channels % g == 0)


def conv_gn_relu(cin: int, cout: int) -> nn.Sequential:
    """1x1 conv (no bias) + GroupNorm + ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False),
                         nn.GroupNorm(group_count(cout), cout), nn.ReLU(inplace=True))


def to_grid(x: torch.Tensor, factor: int, size: Tuple[int, int]) -> torch.Tensor:
    """Upsample ``x`` bilinearly by the integer ``factor`` and crop it to ``size`` (IRN's
    alignment); if the result is too small (a backbone that rounds sizes down), resize to it."""
    if factor > 1:
        x = F.interpolate(x, scale_factor=factor, mode='bilinear', align_corners=False)
    if x.shape[-2] < size[0] or x.shape[-1] < size[1]:
        return F.interpolate(x, size=size, mode='bilinear', align_corners=False)
    return x[..., :size[0], :size[1]]


def pool_to_stride4(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Max-pool 3/2/1 until the level is at stride 4 (the ResNet stem's pooling)."""
    while stride < 4:
        x = F.max_pool2d(x, 3, 2, 1)
        stride *= 2
    return x


def feature_levels(backbone: nn.Module) -> Tuple[List[int], List[int]]:
    """``(channels, strides)`` of a multi-level backbone's outputs (its ``channels`` and
    ``reductions`` lists, as :class:`TimmFeatureLevels` and ``TorchvisionResNet`` give)."""
    chans, strides = getattr(backbone, 'channels', None), getattr(backbone, 'reductions', None)
    if not isinstance(chans, (list, tuple)) or not isinstance(strides, (list, tuple)) \
            or len(chans) != len(strides) or len(chans) < 2:
        raise TypeError(f'the IRN backbone {type(backbone).__name__} does not list several '
                        "feature levels ('channels' and 'reductions'): use a multi-level "
                        'backbone such as TimmFeatureLevels or TorchvisionResNet with '
                        'out_indices=(0, 1, 2, 3, 4)')
    for s in strides:
        if s < 1 or s & (s - 1):
            raise ValueError(f'backbone strides must be powers of two, got {list(strides)}')
    return list(chans), list(strides)


# ----------------------------------------------------------------------------- branches
class BoundaryBranch(nn.Module):
    """Class-boundary logits on the stride-4 grid (IRN's edge branch).

    ``e = W_out * concat_l up_l( ReLU(GN(W_l * f_l)) )``, ``W_l`` 1x1 convs to
    ``widths[l]`` channels, ``up_l`` bringing level ``l`` to stride 4, ``W_out`` a 1x1 conv
    (with bias) to one channel.  The boundary map is ``sigmoid(e)``.
    """

    def __init__(self, in_channels: Sequence[int], strides: Sequence[int],
                 widths: Sequence[int]):
        super().__init__()
        if len(widths) != len(in_channels):
            raise ValueError(f'boundary_widths has {len(widths)} entries for '
                             f'{len(in_channels)} backbone levels')
        self.strides = [max(4, int(s)) for s in strides]
        self.in_strides = [int(s) for s in strides]
        self.levels = nn.ModuleList(conv_gn_relu(c, w) for c, w in zip(in_channels, widths))
        self.out = nn.Conv2d(sum(widths), 1, 1, bias=True)

    def forward(self, feats: Sequence[torch.Tensor], grid: Tuple[int, int]) -> torch.Tensor:
        maps = [to_grid(layer(pool_to_stride4(f, s_in)), s // 4, grid)
                for layer, f, s_in, s in zip(self.levels, feats, self.in_strides, self.strides)]
        return self.out(torch.cat(maps, dim=1))


class DisplacementBranch(nn.Module):
    """A 2-channel displacement field on the stride-4 grid (IRN's displacement branch).

    Fine levels (stride 4) ``g_l = ReLU(GN(W_l f_l))``; deep levels (stride >= 8) the same,
    brought to stride 8 and fused: ``g_deep = up2( ReLU(GN(W_deep concat_l g_l)) )``; then
    ``D = W_2 ReLU(GN(W_1 concat(g_fine, g_deep)))`` with ``W_2`` a 1x1 conv to 2 channels.
    """

    def __init__(self, in_channels: Sequence[int], strides: Sequence[int],
                 widths: Sequence[int], fuse_width: int = 256):
        super().__init__()
        if len(widths) != len(in_channels):
            raise ValueError(f'displacement_widths has {len(widths)} entries for '
                             f'{len(in_channels)} backbone levels')
        self.in_strides = [int(s) for s in strides]
        eff = [max(4, s) for s in self.in_strides]
        self.fine = [i for i, s in enumerate(eff) if s == 4]
        self.deep = [i for i, s in enumerate(eff) if s >= 8]
        if not self.fine or not self.deep:
            raise ValueError(f'the displacement branch needs levels at stride <= 4 and >= 8, '
                             f'the backbone gives strides {list(strides)}')
        self.deep_factor = {i: eff[i] // 8 for i in self.deep}
        self.levels = nn.ModuleList(conv_gn_relu(c, w) for c, w in zip(in_channels, widths))
        self.deep_fuse = conv_gn_relu(sum(widths[i] for i in self.deep), fuse_width)
        fine_width = sum(widths[i] for i in self.fine)
        self.out = nn.Sequential(conv_gn_relu(fine_width + fuse_width, fuse_width),
                                 nn.Conv2d(fuse_width, 2, 1, bias=True))

    def forward(self, feats: Sequence[torch.Tensor], grid: Tuple[int, int]) -> torch.Tensor:
        grid8 = (-(-grid[0] // 2), -(-grid[1] // 2))
        fine = [to_grid(self.levels[i](pool_to_stride4(feats[i], self.in_strides[i])), 1, grid)
                for i in self.fine]
        deep = [to_grid(self.levels[i](feats[i]), self.deep_factor[i], grid8) for i in self.deep]
        deep = to_grid(self.deep_fuse(torch.cat(deep, dim=1)), 2, grid)
        return self.out(torch.cat(fine + [deep], dim=1))


# ----------------------------------------------------------------------------- the network
@MODELS.register_module()
class InterPixelRelationNet(BaseModel):
    """IRNet: frozen backbone + class-boundary branch + displacement branch.

    Args:
        backbone: a module config whose forward gives a list of feature maps and which lists
            their ``channels`` and ``reductions`` (strides): default :data:`DEFAULT_BACKBONE`,
            IRN's own network (torchvision ResNet-50, last stage undilated; give
            ``pretrained=`` for local ImageNet weights); ``TimmFeatureLevels`` takes any timm
            model (its ``output_stride`` dilates instead).
        radius: pair radius on the stride-4 grid for the training losses (IRN: 10).
        boundary_widths: channels per level in the boundary branch (IRN: 32 each).
        displacement_widths: channels per level in the displacement branch
            (IRN: 64, 128, 256, 256, 256) and ``displacement_fuse_width`` (256).
        data_preprocessor: default ``NormalizeImages`` (ImageNet mean/std).

    ``forward(img, ir_label, mode)``: ``'loss'`` -> the five weighted IRN loss terms
    (:func:`wsss_core.irn.losses.irn_loss_terms`, summed by mmengine); ``'predict'`` -> per
    image ``{'boundary', 'displacement'}``; ``'tensor'`` -> ``(boundary logits, displacement)``.

    Backbone weights trained elsewhere (the CAM network's,
    ``docs/methods/moana.md#8-the-wsss-route``) are copied in by the
    ``TrainIRN`` stage's ``backbone_from`` option, not by the model.
    """

    def __init__(self, backbone: Optional[dict] = None, radius: int = 10,
                 boundary_widths: Sequence[int] = (32, 32, 32, 32, 32),
                 displacement_widths: Sequence[int] = (64, 128, 256, 256, 256),
                 displacement_fuse_width: int = 256, data_preprocessor: Optional[dict] = None,
                 init_cfg=None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='NormalizeImages')
        super().__init__(data_preprocessor=build(data_preprocessor, MODELS), init_cfg=init_cfg)
        self.backbone = build(backbone if backbone is not None else DEFAULT_BACKBONE, MODELS)
        chans, strides = feature_levels(self.backbone)
        self.backbone.requires_grad_(False)
        self.backbone.eval()
        self.radius = int(radius)
        self.boundary_branch = BoundaryBranch(chans, strides, boundary_widths)
        self.displacement_branch = DisplacementBranch(chans, strides, displacement_widths,
                                                      displacement_fuse_width)

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True):
        """Switch the branches; the frozen backbone always stays in eval mode."""
        super().train(mode)
        self.backbone.eval()
        return self

    def extract_feat(self, img: torch.Tensor) -> List[torch.Tensor]:
        """The backbone's levels, computed without autograd (the backbone is frozen)."""
        with torch.no_grad():
            return [f.detach() for f in self.backbone(img)]

    def branches(self, img: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(boundary logits (B, 1, h, w), displacement (B, 2, h, w))`` on the stride-4 grid."""
        grid = stride4_grid(*img.shape[-2:])
        feats = self.extract_feat(img)
        return self.boundary_branch(feats, grid), self.displacement_branch(feats, grid)

    def boundary_map(self, img: torch.Tensor, flip: bool = False) -> torch.Tensor:
        """Boundary probabilities ``(B, 1, ceil(H/4), ceil(W/4))`` of a normalised batch.

        ``flip=True`` is IRN's inference: ``sigmoid(e(x)/2 + flip(e(flip(x)))/2)``.
        """
        grid = stride4_grid(*img.shape[-2:])
        logits = self.boundary_branch(self.extract_feat(img), grid)
        if flip:
            flipped = self.boundary_branch(self.extract_feat(img.flip(-1)), grid)
            logits = (logits + flipped.flip(-1)) / 2
        return torch.sigmoid(logits)

    def displacement(self, img: torch.Tensor) -> torch.Tensor:
        """The displacement field ``(B, 2, ceil(H/4), ceil(W/4))`` (dy, dx in grid cells)."""
        grid = stride4_grid(*img.shape[-2:])
        return self.displacement_branch(self.extract_feat(img), grid)

    def forward(self, img: torch.Tensor, ir_label: Optional[torch.Tensor] = None,
                mode: str = 'tensor', **kwargs):
        boundary_logits, disp = self.branches(img)
        if mode == 'loss':
            if ir_label is None:
                raise ValueError("mode='loss' needs the IR label map 'ir_label' (B, H, W) in "
                                 'the batch (0 background, 1..C classes, 255 ignore)')
            return self.loss(boundary_logits, disp, ir_label, img.shape[-2:])
        if mode == 'predict':
            boundary = torch.sigmoid(boundary_logits)
            return [dict(boundary=b, displacement=d) for b, d in zip(boundary, disp)]
        return boundary_logits, disp

    def loss(self, boundary_logits: torch.Tensor, disp: torch.Tensor, ir_label: torch.Tensor,
             img_size) -> dict:
        """The IRN loss terms for labels at image size ``img_size`` (see the losses module)."""
        if tuple(ir_label.shape[-2:]) != tuple(img_size):
            raise ValueError(f'ir_label size {tuple(ir_label.shape[-2:])} differs from the '
                             f'image size {tuple(img_size)}')
        grid = boundary_logits.shape[-2:]
        if grid[0] < self.radius or grid[1] < 2 * self.radius - 1:
            raise ValueError(f'a {tuple(img_size)} training image gives a {tuple(grid)} grid, '
                             f'too small for pairs of radius {self.radius}: crop at least '
                             f'{4 * self.radius} x {4 * (2 * self.radius - 1)} pixels '
                             '(or lower the model radius)')
        labels = stride4_labels(ir_label.to(boundary_logits.device))
        pairs = pair_labels(labels, self.radius)
        affinity = affinity_from_boundary(torch.sigmoid(boundary_logits), self.radius)
        return irn_loss_terms(affinity, disp, pairs, self.radius)
