"""The Discriminative Activation (DA) layer of EDAM (Wu et al., CVPR 2021;
``docs/methods/edam.md#4-discriminative-activation-layer``).

A 3x3 convolution maps the backbone features F (B, D, h, w) to K + 1 channels, K the number
of classes, and each pixel's channel vector is L2-normalised and made non-negative:

    M     = W_da * F                                       (B, K + 1, h, w), no bias
    Mhat  = | M / max(||M(x, y)||_2, 1e-12) |              norm over the K + 1 channels

so ``Mhat`` lies in [0, 1] and ``sum_k Mhat_k(x, y)^2 = 1`` at every pixel (0 only where M is
exactly 0).  Channel k < K is the class-specific mask of class k; channel K is the extra
("background") channel: it only takes part in the normalisation, competing with the class
channels for the unit norm, and is never used as a class mask.  The absolute value (not a
ReLU) keeps classes whose activations learned a negative sign (the classifier that follows
is sign-agnostic); ``|M / ||M|| |`` equals ``|M| / || |M| ||``, the paper's ``norm(|M|)``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['DiscriminativeActivation']


class DiscriminativeActivation(nn.Module):
    """``Mhat = |l2_normalize(conv3x3(F), dim=channels)|`` with K + 1 output channels.

    Args:
        in_channels: channels D of the backbone features (4096 for ResNet-38).
        num_classes: K; the layer outputs K + 1 channels, channel K the background one.
        eps: lower bound of the per-pixel norm (1e-12 as in the reference).

    The conv (``conv``, 3x3, padding 1, no bias) is Xavier-uniform initialised.
    """

    def __init__(self, in_channels: int, num_classes: int, eps: float = 1e-12):
        super().__init__()
        self.num_classes = int(num_classes)
        self.eps = float(eps)
        self.conv = nn.Conv2d(int(in_channels), self.num_classes + 1, 3, padding=1, bias=False)
        nn.init.xavier_uniform_(self.conv.weight)

    @property
    def background_channel(self) -> int:
        """Index of the extra (background) channel: K."""
        return self.num_classes

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        """Normalised masks ``Mhat`` (B, K + 1, h, w) of features ``feat`` (B, D, h, w)."""
        return F.normalize(self.conv(feat), p=2.0, dim=1, eps=self.eps).abs()
