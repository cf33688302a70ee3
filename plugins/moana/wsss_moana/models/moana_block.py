"""The MoANA block: axis-based nexus attention (``docs/methods/moana.md#2-the-block``).

From a feature map X (N, C, H, W), three axis descriptors by average pooling, each turned into
a sigmoid attention by a 1-D convolution (kernel k = 3, zero padding 1, no bias) and BatchNorm
("triple-view attention representation"):

    z_c[n, c]    = sigmoid(BN_c(conv_c(mean_{i,j} X[n, :, i, j]))[c])   conv_c: 1 -> 1 along C
    z_h[n, c, i] = sigmoid(BN_h(conv_h(mean_j X[n, :, :, j]))[c, i])    conv_h: C -> C along H
    z_w[n, c, j] = sigmoid(BN_w(conv_w(mean_i X[n, :, i, :]))[c, j])    conv_w: C -> C along W

broadcast-summed into the full attention map ("attention expansion")

    M[n, c, i, j] = z_c[n, c] + z_h[n, c, i] + z_w[n, c, j]              in (0, 3)

and the features re-weighted ("feature calibration")

    X_hat = X * (base + gain * M)

with (base, gain) = (1, 1) in the WSOL code (X + X * M) and (0.35, 0.65) in the WSSS code.
The BatchNorms are BatchNorm2d(C) on the (N, C, 1, 1), (N, C, H, 1) and (N, C, 1, W) tensors, so
BN_c in training needs N >= 2.  Parameters: 3 + 2 * 3 C^2 + 3 * 2 C (25,178,115 at C = 2048).

``inference_bn``: at CAM inference (``eval()``) the BatchNorms use their running statistics
(``'running'``, the standard and the default) or the statistics of the batch being inferred
(``'batch'``: what the released WSSS code does, because its network never switches to eval
mode; there the batch is one image and its flip).  With ``'batch'`` the maps of an image
depend on what else is in its batch: run ``MakeCAMs`` with ``batch_size=1`` to reproduce the
reference.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from wsss_core.registry import MODELS

#: feature-calibration presets (base, gain) of the released code
CALIBRATION_PRESETS = {'wsol': (1.0, 1.0), 'wsss': (0.35, 0.65)}
INFERENCE_BN_MODES = ('running', 'batch')


@MODELS.register_module()
class MoANABlock(nn.Module):
    """Axis-based nexus attention on (N, C, H, W) features; the output has the input's shape.

    Args:
        channels: C.
        kernel_size: of the three 1-D convolutions (3 in the paper and code).
        preset: ``'wsol'`` (base 1, gain 1) or ``'wsss'`` (0.35, 0.65); ``base``/``gain``
            override it.
        inference_bn: ``'running'`` (default) or ``'batch'`` (see the module docstring).
    """

    def __init__(self, channels: int, kernel_size: int = 3, preset: str = 'wsol',
                 base: float = None, gain: float = None, inference_bn: str = 'running'):
        super().__init__()
        if preset not in CALIBRATION_PRESETS:
            raise ValueError(f'unknown MoANA preset {preset!r}; presets: '
                             f'{sorted(CALIBRATION_PRESETS)} (or give base= and gain=)')
        if inference_bn not in INFERENCE_BN_MODES:
            raise ValueError(f'inference_bn must be one of {INFERENCE_BN_MODES}, got '
                             f'{inference_bn!r}')
        if kernel_size % 2 != 1:
            raise ValueError(f'kernel_size must be odd (same-length output), got {kernel_size}')
        preset_base, preset_gain = CALIBRATION_PRESETS[preset]
        self.base = float(preset_base if base is None else base)
        self.gain = float(preset_gain if gain is None else gain)
        self.channels = int(channels)
        pad = kernel_size // 2
        self.conv_c = nn.Conv1d(1, 1, kernel_size, padding=pad, bias=False)
        self.conv_h = nn.Conv1d(channels, channels, kernel_size, padding=pad, bias=False)
        self.conv_w = nn.Conv1d(channels, channels, kernel_size, padding=pad, bias=False)
        # plain BatchNorms; the eval-mode choice is the block's (see axis_norm), so that it
        # survives sync_bn=True, which replaces every BatchNorm (subclasses included) by a
        # plain SyncBatchNorm in distributed CUDA runs
        self.bn_c = nn.BatchNorm2d(channels)
        self.bn_h = nn.BatchNorm2d(channels)
        self.bn_w = nn.BatchNorm2d(channels)
        self._inference_bn = inference_bn

    @property
    def inference_bn(self) -> str:
        return self._inference_bn

    def axis_norm(self, norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``norm(x)``, except in eval mode with ``inference_bn='batch'``: then the
        statistics of ``x`` itself with ``norm``'s affine parameters, the running averages
        untouched (``norm``: a BatchNorm, or the SyncBatchNorm ``sync_bn`` made of it)."""
        if self.training or self._inference_bn == 'running':
            return norm(x)
        return F.batch_norm(x, None, None, norm.weight, norm.bias, True, 0.0, norm.eps)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """M = z_c + z_h + z_w, broadcast to (N, C, H, W)."""
        n, c, h, w = x.shape
        if n < 2 and (self.training or self.inference_bn == 'batch'):
            raise ValueError('MoANA with batch statistics (training, or inference_bn='
                             "'batch') needs at least 2 images per forward: its channel "
                             'BatchNorm normalises over the batch only (docs/methods/moana.md '
                             '§2; the reference infers an image together with its flip); in '
                             'training, set drop_last=True on the stage so that no batch of one '
                             'remains')
        d_c = x.mean(dim=(2, 3)).unsqueeze(1)                       # (N, 1, C)
        z_c = torch.sigmoid(self.axis_norm(self.bn_c, self.conv_c(d_c).view(n, c, 1, 1)))
        z_h = torch.sigmoid(self.axis_norm(self.bn_h, self.conv_h(x.mean(dim=3)).view(n, c, h, 1)))
        z_w = torch.sigmoid(self.axis_norm(self.bn_w, self.conv_w(x.mean(dim=2)).view(n, c, 1, w)))
        return z_c + z_h + z_w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (self.base + self.gain * self.attention(x))

    def extra_repr(self) -> str:
        return (f'channels={self.channels}, base={self.base}, gain={self.gain}, '
                f'inference_bn={self.inference_bn!r}')


@MODELS.register_module()
class WithMoANA(nn.Module):
    """Any core backbone (``TimmBackbone``, ``SmallResNet``, ``ResNet50`` ...) followed by a
    MoANA block on its output, i.e. right before the class-specific 1x1 classifier (where the
    released ResNet-50 puts it, as the last element of ``layer4``).

    A multi-level backbone (one returning a list of maps and listing their ``channels`` and
    ``reductions``, e.g. for the IRN) gets the block on its last map, so the IRN can reuse a
    trained CAM backbone with its MoANA block (``docs/methods/moana.md#8-the-wsss-route``).

    Args:
        backbone: the backbone config (must expose ``out_channels``).
        moana: :class:`MoANABlock` options besides ``channels`` (e.g. ``preset='wsss'``).
        enabled: False gives the plain backbone (the same config for the baseline).
    """

    def __init__(self, backbone: dict, moana: dict = None, enabled: bool = True):
        super().__init__()
        from wsss_core.registry import build
        self.backbone = build(backbone, MODELS)
        self.out_channels = self.backbone.out_channels
        self.output_stride = getattr(self.backbone, 'output_stride', 8)
        for attr in ('channels', 'reductions'):
            if hasattr(self.backbone, attr):
                setattr(self, attr, list(getattr(self.backbone, attr)))
        self.moana = MoANABlock(self.out_channels, **(moana or {})) if enabled else None

    def forward(self, x: torch.Tensor):
        feat = self.backbone(x)
        if self.moana is None:
            return feat
        if isinstance(feat, (list, tuple)):
            return [*feat[:-1], self.moana(feat[-1])]
        return self.moana(feat)
