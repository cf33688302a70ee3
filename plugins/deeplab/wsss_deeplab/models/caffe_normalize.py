"""Caffe-style input normalisation of the reference DeepLab
(``docs/methods/deeplab.md#43-data-pipeline``).

deeplab-pytorch reads images with OpenCV (BGR), keeps the 0..255 range and subtracts the
per-channel mean of the Caffe ImageNet models, with no division by a standard deviation:

    x_c = I_{bgr, c} - m_c,     m = (104.008, 116.669, 122.675)  (B, G, R)

This is what the COCO-initialised DeepLab weights expect.  Our datasets give RGB uint8, so
the channels are reversed on the device first.  The default of the segmentors is the core's
``NormalizeImages`` (ImageNet mean/std, RGB), the right choice for torchvision/timm weights.
"""
from __future__ import annotations

from typing import Sequence

import torch

from wsss_core.models.data_preprocessor import CAFFE_BGR_MEAN, NormalizeImages
from wsss_core.registry import MODELS

__all__ = ['CAFFE_BGR_MEAN', 'CaffeNormalize']



@MODELS.register_module()
class CaffeNormalize(NormalizeImages):
    """``img`` uint8 RGB (B, 3, H, W) -> float BGR minus ``mean`` (0..255 scale, std 1)."""

    def __init__(self, mean: Sequence[float] = CAFFE_BGR_MEAN, channels_last: bool = False):
        super().__init__(channels_last=channels_last)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.ones(1, 3, 1, 1)

    def normalize(self, img: torch.Tensor) -> torch.Tensor:
        bgr = img.float().flip(1)
        out = bgr - self.mean.to(bgr.device)
        return out.contiguous(memory_format=torch.channels_last) if self.channels_last else out
