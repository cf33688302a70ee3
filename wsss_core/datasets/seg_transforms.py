"""The reference DeepLab training augmentation (``docs/methods/deeplab.md#43-data-pipeline``).

deeplab-pytorch, per training image:

1. pick one scale s uniformly from (0.5, 0.75, 1.0, 1.25, 1.5); resize to
   ``(int(s H), int(s W))``, the image bilinearly, the label by PIL nearest
   (:class:`RandomScaleChoice`);
2. pad bottom/right to at least the crop size, the image with the mean colour, the label
   with 255 (:class:`PadToSize`);
3. a random 321 x 321 crop (the core's ``RandomPadCrop(size=321)``), a horizontal flip with
   p = 0.5 (``RandomHorizontalFlip``).

Images stay uint8 RGB here; normalisation happens on the device (data preprocessor), so the
pad colour is the mean in RGB order, which normalises to about 0.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from ..registry import TRANSFORMS
from .label_resize import pil_nearest_indices

__all__ = ['LABEL_MAPS', 'RandomScaleChoice', 'PadToSize', 'deeplab_train_pipeline']

#: pixel maps moved with the image, and their pad values
LABEL_MAPS = {'gt_seg': 255, 'pseudo_seg': 255, 'saliency': 0}
#: the Caffe BGR mean (104.008, 116.669, 122.675) in RGB order, rounded
MEAN_RGB_U8 = (123, 117, 104)


def resize_nearest_pil(arr: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Resize a 2-D map to ``size = (h, w)`` with PIL NEAREST's index rule."""
    h, w = size
    rows = pil_nearest_indices(arr.shape[0], h)
    cols = pil_nearest_indices(arr.shape[1], w)
    return np.ascontiguousarray(arr[rows][:, cols])


@TRANSFORMS.register_module()
class RandomScaleChoice:
    """Rescale by a factor drawn uniformly from ``scales`` (or from ``scale_range``).

    Size ``(int(s H), int(s W))``; image bilinear (OpenCV), label maps PIL-nearest.
    """

    def __init__(self, scales: Optional[Sequence[float]] = (0.5, 0.75, 1.0, 1.25, 1.5),
                 scale_range: Optional[Tuple[float, float]] = None):
        if not scales and not scale_range:
            raise ValueError('give scales or scale_range')
        self.scales = tuple(float(s) for s in scales) if scales and not scale_range else None
        self.scale_range = tuple(scale_range) if scale_range else None

    def draw(self) -> float:
        if self.scales is not None:
            return self.scales[int(torch.randint(len(self.scales), ()).item())]
        low, high = self.scale_range
        return low + (high - low) * torch.rand(()).item()

    def __call__(self, sample: dict) -> dict:
        s = self.draw()
        h, w = sample['img'].shape[:2]
        size = (max(1, int(h * s)), max(1, int(w * s)))
        if size == (h, w):
            return sample
        sample['img'] = cv2.resize(sample['img'], size[::-1], interpolation=cv2.INTER_LINEAR)
        for key in LABEL_MAPS:
            if key in sample:
                sample[key] = resize_nearest_pil(sample[key], size)
        return sample


@TRANSFORMS.register_module()
class PadToSize:
    """Pad bottom/right to at least ``size``: image with ``img_fill``, labels with 255."""

    def __init__(self, size=321, img_fill: Sequence[int] = MEAN_RGB_U8):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.img_fill = tuple(int(v) for v in img_fill)

    def __call__(self, sample: dict) -> dict:
        h, w = sample['img'].shape[:2]
        ph, pw = max(self.size[0] - h, 0), max(self.size[1] - w, 0)
        if ph == 0 and pw == 0:
            return sample
        img = sample['img']
        out = np.empty((h + ph, w + pw) + img.shape[2:], dtype=img.dtype)
        out[...] = np.asarray(self.img_fill, dtype=img.dtype)
        out[:h, :w] = img
        sample['img'] = out
        for key, fill in LABEL_MAPS.items():
            if key in sample:
                sample[key] = np.pad(sample[key], ((0, ph), (0, pw)), mode='constant',
                                     constant_values=fill)
        return sample


def deeplab_train_pipeline(crop_size: int = 321,
                           scales: Sequence[float] = (0.5, 0.75, 1.0, 1.25, 1.5),
                           label_key: str = 'pseudo_seg', flip: bool = True) -> list:
    """The reference augmentation as transform configs, ending in ``PackInputs``."""
    pipeline = [dict(type='RandomScaleChoice', scales=tuple(scales)),
                dict(type='PadToSize', size=crop_size),
                dict(type='RandomPadCrop', size=crop_size)]
    if flip:
        pipeline.append(dict(type='RandomHorizontalFlip', prob=0.5))
    pipeline.append(dict(type='PackInputs', keys=('img', label_key)))
    return pipeline
