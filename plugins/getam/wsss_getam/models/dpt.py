"""The DPT decoder of GETAM (``docs/methods/getam.md#23-the-network``): reassemble, fusion, SE
block and segmentation head.

DPT, the dense prediction transformer (Ranftl, Bochkovskiy & Koltun, "Vision Transformers for
Dense Prediction", ICCV 2021), turns the tokens of four ViT blocks into an image-like pyramid
(*reassemble*, sec. 3 of the paper) and fuses it coarse to fine with RefineNet-style blocks
(*fusion*).  GETAM (Sun et al., arXiv 2112.02841) keeps that decoder with BatchNorm in the
residual units, adds a squeeze-and-excitation block on the finest fused feature (the
reference's ``cam_module``) and a segmentation head with background + C outputs.

For a B x 3 x H x W input (H, W multiples of 32), grid h x w = H/16 x W/16, embed dim D::

    hook i tokens (B, N, D) --readout--> (B, D, h, w) --1x1 conv--> --resample--> l_i
        resample: x4 (transposed conv), x2 (transposed conv), x1, x1/2 (3x3 conv, stride 2)
    l_i --3x3 conv, no bias--> 256 ch (layer{i}_rn)
    path4 = fuse(l4_rn); path3 = fuse(path4, l3_rn); ...; path1 = fuse(path2, l1_rn)  (stride 2)
    logits = head(SE(path1))                                                           (stride 1)

The modules here are plain ``nn.Module``s; :class:`~wsss_getam.models.getam_net.GETAMNet`
is the registered network that assembles them.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['ProjectReadout', 'TokenReassemble', 'Reassemble', 'ResidualConvUnit',
           'FeatureFusionBlock', 'DPTDecoder', 'SEBlock', 'SegmentationHead',
           'PLAIN_REASSEMBLE_CHANNELS', 'default_reassemble_channels', 'REASSEMBLE_SCALES']

#: default-config table: DPT's reassemble widths per plain-ViT embed dim (ViT-B, ViT-L)
PLAIN_REASSEMBLE_CHANNELS = {768: (96, 192, 384, 768), 1024: (256, 512, 1024, 1024)}
#: resampling factor of each reassembled level relative to the token grid (stride 16)
REASSEMBLE_SCALES = (4.0, 2.0, 1.0, 0.5)


def default_reassemble_channels(embed_dim: int, is_hybrid: bool = False,
                                hook_channels: Optional[Sequence[int]] = None) -> Tuple[int, ...]:
    """The reassembled channel counts of the four levels (DPT's ``features`` list).

    Plain ViT: :data:`PLAIN_REASSEMBLE_CHANNELS` (ViT-B/DeiT-B 768 -> [96, 192, 384, 768],
    ViT-L 1024 -> [256, 512, 1024, 1024]); other widths (tiny test models) get
    [D/8, D/4, D/2, D].  Hybrid: the two ResNet maps keep their channels (``hook_channels``
    [0:2], 256 and 512 for R50+ViT-B), the two token levels get D (768): [256, 512, 768, 768].
    """
    d = int(embed_dim)
    if is_hybrid:
        if hook_channels is None or len(hook_channels) < 2:
            raise ValueError('a hybrid backbone needs hook_channels (the channels of its two '
                             'ResNet stage maps) to size the reassemble block')
        return (int(hook_channels[0]), int(hook_channels[1]), d, d)
    if d in PLAIN_REASSEMBLE_CHANNELS:
        return PLAIN_REASSEMBLE_CHANNELS[d]
    return (max(d // 8, 1), max(d // 4, 1), max(d // 2, 1), d)


class ProjectReadout(nn.Module):
    """DPT's *project* readout (Ranftl et al. 2021, sec. 3, "Read"), then the grid reshape.

    Each patch token t_p (p >= number of prefix tokens) is joined with the class token t_0
    and projected back to D channels:

        r_p = GELU( W [t_p ; t_0] + b ),     W in R^{D x 2D}

    then the h*w tokens are laid out as a (B, D, h, w) map.  ``num_prefix_tokens`` is 1 (class
    token) or 2 (class + distillation token of DeiT-distilled; only the class token is read).
    """

    def __init__(self, embed_dim: int, num_prefix_tokens: int = 1):
        super().__init__()
        self.num_prefix_tokens = int(num_prefix_tokens)
        self.project = nn.Linear(2 * embed_dim, embed_dim)
        self.act = nn.GELU()

    def forward(self, tokens: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
        if tokens.dim() != 3:
            raise ValueError(f'ProjectReadout expects (B, N, D) tokens, got shape '
                             f'{tuple(tokens.shape)}')
        h, w = int(grid[0]), int(grid[1])
        patches = tokens[:, self.num_prefix_tokens:]
        if patches.shape[1] != h * w:
            raise ValueError(f'{patches.shape[1]} patch tokens do not fill the {h}x{w} grid '
                             f'(N={tokens.shape[1]}, prefix tokens={self.num_prefix_tokens})')
        readout = tokens[:, :1].expand_as(patches)
        out = self.act(self.project(torch.cat((patches, readout), dim=-1)))
        return out.transpose(1, 2).reshape(out.shape[0], out.shape[2], h, w)


def _resample(channels: int, scale: float) -> nn.Module:
    """DPT's resampling of one level: transposed conv k = s = scale to upsample, identity at
    x1, a 3x3 conv with stride 2 (padding 1) to downsample by 2."""
    if scale == 1:
        return nn.Identity()
    if scale > 1:
        k = int(scale)
        return nn.ConvTranspose2d(channels, channels, kernel_size=k, stride=k)
    if scale == 0.5:
        return nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1)
    raise ValueError(f'unsupported reassemble scale {scale}: use 4, 2, 1 or 0.5')


class TokenReassemble(nn.Module):
    """One reassemble branch for a token hook (Ranftl et al. 2021, eq. 3 with the project
    readout): readout -> 1x1 conv D -> C_i -> resample by ``scale`` (4, 2, 1 or 1/2)."""

    def __init__(self, embed_dim: int, out_channels: int, scale: float,
                 num_prefix_tokens: int = 1):
        super().__init__()
        self.readout = ProjectReadout(embed_dim, num_prefix_tokens)
        self.proj = nn.Conv2d(embed_dim, out_channels, kernel_size=1)
        self.resample = _resample(out_channels, scale)

    def forward(self, tokens: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
        return self.resample(self.proj(self.readout(tokens, grid)))


class Reassemble(nn.Module):
    """The four reassemble branches (DPT ``act_postprocess1..4``, ``docs/methods/getam.md`` §2.3).

    Plain ViT (every hook is (B, N, D) tokens), channels [96, 192, 384, 768] for ViT-B:
    strides 4, 8, 16, 32.  Hybrid R50+ViT (``is_hybrid``): hooks 1 and 2 are the ResNet
    stage maps (stride 4 and 8) and pass through unchanged; hooks 3 and 4 are token branches
    (channels [256, 512, 768, 768]).

    Args:
        embed_dim: D.
        out_channels: the four level widths (default :func:`default_reassemble_channels`).
        num_prefix_tokens: 1, or 2 for DeiT-distilled.
        is_hybrid: hooks 1-2 are spatial maps that pass through.
        hook_channels: the backbone's hook channels (hybrid: sizes the pass-through levels).
    """

    def __init__(self, embed_dim: int, out_channels: Optional[Sequence[int]] = None,
                 num_prefix_tokens: int = 1, is_hybrid: bool = False,
                 hook_channels: Optional[Sequence[int]] = None):
        super().__init__()
        if out_channels is None:
            out_channels = default_reassemble_channels(embed_dim, is_hybrid, hook_channels)
        if len(out_channels) != 4:
            raise ValueError(f'Reassemble needs 4 output widths, got {list(out_channels)}')
        if is_hybrid and hook_channels is not None and \
                tuple(out_channels[:2]) != tuple(hook_channels[:2]):
            raise ValueError(f'hybrid levels 1-2 pass through, so out_channels[:2] must equal '
                             f'the ResNet hook channels {list(hook_channels[:2])}, got '
                             f'{list(out_channels[:2])}')
        self.out_channels = tuple(int(c) for c in out_channels)
        self.is_hybrid = bool(is_hybrid)
        self.branches = nn.ModuleList(
            nn.Identity() if is_hybrid and i < 2 else
            TokenReassemble(embed_dim, c, scale, num_prefix_tokens)
            for i, (c, scale) in enumerate(zip(self.out_channels, REASSEMBLE_SCALES)))

    def level(self, index: int, hook: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
        """Reassemble one hook (``index`` 0..3) alone (the class head needs only level 4)."""
        branch = self.branches[index]
        if isinstance(branch, TokenReassemble):
            return branch(hook, grid)
        if hook.dim() != 4 or hook.shape[1] != self.out_channels[index]:
            raise ValueError(f'hybrid hook {index + 1} must be a (B, {self.out_channels[index]},'
                             f' H, W) ResNet map, got shape {tuple(hook.shape)}')
        return branch(hook)  # the identity

    def forward(self, hooks: Sequence[torch.Tensor], grid: Tuple[int, int]) -> list:
        if len(hooks) != 4:
            raise ValueError(f'Reassemble expects 4 hooks, got {len(hooks)}')
        return [self.level(i, hook, grid) for i, hook in enumerate(hooks)]


class ResidualConvUnit(nn.Module):
    """DPT's residual convolution unit with BatchNorm (Ranftl et al. 2021, fig. 1 right):

        RCU(x) = x + BN(conv3x3(ReLU(BN(conv3x3(ReLU(x))))))

    The convs have no bias (the BN that follows has one).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn1(self.conv1(F.relu(x)))
        out = self.bn2(self.conv2(F.relu(out)))
        return x + out


class FeatureFusionBlock(nn.Module):
    """DPT's fusion block (Ranftl et al. 2021, fig. 1 right; ``docs/methods/getam.md`` §2.3):

        fuse(x, s) = conv1x1( up2( RCU_2( x + RCU_1(s) ) ) ),   fuse(x) = conv1x1(up2(RCU_2(x)))

    ``up2`` is x2 bilinear with align_corners=True; the 1x1 conv keeps the width and has a
    bias.  ``with_skip=False`` (the coarsest block, path4) builds no ``RCU_1``: the reference
    builds one and never uses it.
    """

    def __init__(self, channels: int, with_skip: bool = True):
        super().__init__()
        self.skip_unit = ResidualConvUnit(channels) if with_skip else None
        self.unit = ResidualConvUnit(channels)
        self.out_conv = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor, skip: Optional[torch.Tensor] = None) -> torch.Tensor:
        if skip is not None:
            if self.skip_unit is None:
                raise ValueError('this fusion block was built with_skip=False: it takes no skip')
            if skip.shape[-2:] != x.shape[-2:]:
                raise ValueError(f'fusion sizes differ: path {tuple(x.shape[-2:])} vs skip '
                                 f'{tuple(skip.shape[-2:])}; the input height and width must '
                                 f'be multiples of 32')
            x = x + self.skip_unit(skip)
        x = self.unit(x)
        x = F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=True)
        return self.out_conv(x)


class DPTDecoder(nn.Module):
    """DPT's "scratch" decoder (Ranftl et al. 2021, sec. 3 "Fusion"; GETAM's in
    ``docs/methods/getam.md#23-the-network``):

        l_i' = conv3x3_i(l_i)  (no bias, -> ``features``)                i = 1..4
        path4 = fuse_4(l_4'),  path_i = fuse_i(path_{i+1}, l_i')        i = 3, 2, 1

    With strides 4/8/16/32 for l_1..l_4, path4..path1 sit at strides 16, 8, 4, 2.
    """

    def __init__(self, in_channels: Sequence[int], features: int = 256):
        super().__init__()
        if len(in_channels) != 4:
            raise ValueError(f'DPTDecoder needs 4 input widths, got {list(in_channels)}')
        self.features = int(features)
        for i, c in enumerate(in_channels, start=1):
            setattr(self, f'layer{i}_rn', nn.Conv2d(c, features, 3, padding=1, bias=False))
        for i in range(1, 5):
            setattr(self, f'refinenet{i}', FeatureFusionBlock(features, with_skip=i < 4))

    def paths(self, feats: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        """``(path4, path3, path2, path1)`` for the four reassembled maps."""
        l1, l2, l3, l4 = (getattr(self, f'layer{i}_rn')(f) for i, f in enumerate(feats, 1))
        path4 = self.refinenet4(l4)
        path3 = self.refinenet3(path4, l3)
        path2 = self.refinenet2(path3, l2)
        path1 = self.refinenet1(path2, l1)
        return path4, path3, path2, path1

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """path1, the finest fused map (``features`` channels, stride 2)."""
        return self.paths(feats)[-1]


class SEBlock(nn.Module):
    """GETAM's ``cam_module``: a conv body with squeeze-and-excitation (Hu et al., CVPR 2018)
    and the block input as residual (``docs/methods/getam.md#23-the-network``):

        u = conv3x3(ReLU(conv3x3(x)))                      (both convs with bias)
        s = sigmoid(W_2 ReLU(W_1 GAP(u)))                  W_1: C -> C/r, W_2: C/r -> C, no bias
        SE(x) = u * s + x                                  (s broadcast over the pixels)
    """

    def __init__(self, channels: int = 256, reduction: int = 16):
        super().__init__()
        if channels // reduction < 1:
            raise ValueError(f'SEBlock: {channels} channels cannot be reduced by {reduction}')
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.fc1 = nn.Linear(channels, channels // reduction, bias=False)
        self.fc2 = nn.Linear(channels // reduction, channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.conv2(F.relu(self.conv1(x)))
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(u.mean(dim=(2, 3))))))
        return u * s[:, :, None, None] + x


class SegmentationHead(nn.Module):
    """DPT's segmentation head as used by GETAM (``docs/methods/getam.md#23-the-network``):

        logits = up2( conv1x1( Dropout_p( ReLU(BN(conv3x3(x))) ) ) )

    conv3x3 keeps the width without bias; conv1x1 maps to ``num_outputs`` (background + C)
    with bias; ``up2`` is x2 bilinear with align_corners=True (stride 2 -> input size).
    ``Dropout_p`` is element-wise dropout, p = 0.1.
    """

    def __init__(self, channels: int, num_outputs: int, dropout: float = 0.1):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Conv2d(channels, num_outputs, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(F.relu(self.bn(self.conv(x))))
        return F.interpolate(self.classifier(x), scale_factor=2, mode='bilinear',
                             align_corners=True)
