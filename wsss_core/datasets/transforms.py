"""Sample transforms (dict in, dict out) for training pipelines.

Geometric transforms move ``img`` and, when present, the pixel maps ``gt_seg``,
``saliency``, ``pseudo_seg`` and ``valid`` together (``valid``: 1 on image pixels, 0 on the
padding a crop adds, from :class:`MarkValidPixels`).  Images stay uint8 until :class:`PackInputs`;
normalisation happens on the device in the model's data preprocessor.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import cv2
import numpy as np
import torch

from ..registry import TRANSFORMS

PIXEL_MAPS = ('gt_seg', 'saliency', 'pseudo_seg', 'valid')
_MAP_FILL = {'gt_seg': 255, 'pseudo_seg': 255, 'saliency': 0, 'valid': 0}


class RandomTransform:
    """Base for transforms that draw random numbers from torch's generator (seeded per worker)."""

    @staticmethod
    def uniform(low: float, high: float) -> float:
        return low + (high - low) * torch.rand(()).item()

    @staticmethod
    def randint(high: int) -> int:
        return int(torch.randint(high, ()).item()) if high > 0 else 0


class Compose:
    """A transform pipeline: configs (built from TRANSFORMS) or callables, applied in order."""

    def __init__(self, transforms: Sequence = ()):
        from ..registry import build
        self.transforms = [build(t, TRANSFORMS) if isinstance(t, dict) else t
                           for t in (transforms or [])]

    def __call__(self, sample: dict) -> dict:
        for transform in self.transforms:
            sample = transform(sample)
        return sample

    def __len__(self) -> int:
        return len(self.transforms)


@TRANSFORMS.register_module()
class RandomHorizontalFlip(RandomTransform):
    """Flip the image and its pixel maps left-right with probability ``prob``."""

    def __init__(self, prob: float = 0.5):
        self.prob = prob

    def __call__(self, sample: dict) -> dict:
        if torch.rand(()).item() < self.prob:
            for key in ('img',) + PIXEL_MAPS:
                if key in sample:
                    sample[key] = np.ascontiguousarray(sample[key][:, ::-1])
        return sample


@TRANSFORMS.register_module()
class RandomRescale(RandomTransform):
    """Resize by a factor drawn from ``scale_range`` (bilinear image, nearest maps).

    Label maps use OpenCV's ``INTER_NEAREST_EXACT``, which picks the same pixels as PIL's
    NEAREST (plain ``INTER_NEAREST`` is shifted by half a pixel: deeplab-pytorch issue 51).
    """

    def __init__(self, scale_range: Tuple[float, float] = (0.5, 1.5)):
        self.scale_range = scale_range

    def __call__(self, sample: dict) -> dict:
        s = self.uniform(*self.scale_range)
        h, w = sample['img'].shape[:2]
        size = (max(1, round(w * s)), max(1, round(h * s)))
        sample['img'] = cv2.resize(sample['img'], size, interpolation=cv2.INTER_LINEAR)
        for key in PIXEL_MAPS:
            if key in sample:
                sample[key] = cv2.resize(sample[key], size, interpolation=cv2.INTER_NEAREST_EXACT)
        return sample


_INTERPOLATION = {'nearest': cv2.INTER_NEAREST_EXACT, 'bilinear': cv2.INTER_LINEAR,
                  'bicubic': cv2.INTER_CUBIC, 'area': cv2.INTER_AREA}


@TRANSFORMS.register_module()
class Resize:
    """Deterministic resize: the short side to ``short_side`` (aspect kept, as OAA's
    ``ResizeShort(224)``) or the whole image to ``size = (h, w)`` (NSROM's 256x256 warp).

    The image uses ``interpolation`` (default bicubic, as the references' PIL pipelines);
    pixel maps use nearest (the label-safe ``INTER_NEAREST_EXACT``).
    """

    def __init__(self, short_side=None, size=None, interpolation: str = 'bicubic'):
        if (short_side is None) == (size is None):
            raise ValueError('Resize needs exactly one of short_side or size')
        if interpolation not in _INTERPOLATION:
            raise ValueError(f'interpolation must be one of {sorted(_INTERPOLATION)}, '
                             f'not {interpolation!r}')
        self.short_side = short_side
        self.size = tuple(size) if size is not None else None
        self.interpolation = interpolation

    def target_size(self, h: int, w: int) -> Tuple[int, int]:
        """(H', W') for an (h, w) image."""
        if self.size is not None:
            return int(self.size[0]), int(self.size[1])
        s = self.short_side / min(h, w)
        return max(1, round(h * s)), max(1, round(w * s))

    def __call__(self, sample: dict) -> dict:
        h, w = sample['img'].shape[:2]
        th, tw = self.target_size(h, w)
        if (th, tw) == (h, w):
            return sample
        sample['img'] = cv2.resize(sample['img'], (tw, th),
                                   interpolation=_INTERPOLATION[self.interpolation])
        for key in PIXEL_MAPS:
            if key in sample:
                sample[key] = cv2.resize(sample[key], (tw, th),
                                         interpolation=cv2.INTER_NEAREST_EXACT)
        return sample


@TRANSFORMS.register_module()
class RandomLongSide(RandomTransform):
    """Resize so that the long side is a random integer in ``[low, high]``, aspect kept
    (psa / EDAM: 256..512, bicubic image); pixel maps use nearest."""

    def __init__(self, low: int = 256, high: int = 512, interpolation: str = 'bicubic'):
        if not 0 < low <= high:
            raise ValueError(f'RandomLongSide needs 0 < low <= high, got {low}, {high}')
        self.low, self.high = int(low), int(high)
        self.interpolation = interpolation

    def __call__(self, sample: dict) -> dict:
        h, w = sample['img'].shape[:2]
        target = self.low + self.randint(self.high - self.low + 1)
        s = target / max(h, w)
        size = (max(1, round(h * s)), max(1, round(w * s)))
        return Resize(size=size, interpolation=self.interpolation)(sample)


@TRANSFORMS.register_module()
class ColorJitter(RandomTransform):
    """Random brightness, contrast, saturation and hue of the uint8 RGB image
    (torchvision's ``ColorJitter`` factors; OAA uses 0.3 / 0.3 / 0.3 / 0.1).

    Factors are drawn from torch's generator, so runs are reproducible under a seed.
    """

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0,
                 saturation: float = 0.0, hue: float = 0.0):
        from torchvision.transforms import ColorJitter as _TVColorJitter
        self._jitter = _TVColorJitter(brightness, contrast, saturation, hue)

    def __call__(self, sample: dict) -> dict:
        img = torch.from_numpy(np.ascontiguousarray(sample['img'])).permute(2, 0, 1)
        sample['img'] = self._jitter(img).permute(1, 2, 0).contiguous().numpy()
        return sample


@TRANSFORMS.register_module()
class RandomPadCrop(RandomTransform):
    """Pad by ``pad`` pixels (reflect for the image) and/or to ``size``, then crop ``size`` at random.

    ``size=None`` keeps the input size (a random translation by up to ``pad`` pixels).
    The image is padded by ``img_pad_mode``: ``'reflect'``, ``'zero'`` (black) or ``'mean'``
    (``img_pad_value``, default the ImageNet mean colour: zero after normalisation, as psa /
    EDAM pad).  Pixel maps are padded with their ignore value (255 for labels, 0 for saliency).
    """

    IMG_PAD_MODES = ('reflect', 'zero', 'constant', 'mean')

    def __init__(self, size=None, pad: int = 0, img_pad_mode: str = 'reflect',
                 img_pad_value: Sequence[int] = (124, 116, 104)):
        if img_pad_mode not in self.IMG_PAD_MODES:
            raise ValueError(f'img_pad_mode must be one of {self.IMG_PAD_MODES}, '
                             f'not {img_pad_mode!r}')
        self.size = (size, size) if isinstance(size, int) else size
        self.pad = int(pad)
        self.img_pad_mode = img_pad_mode
        self.img_pad_value = np.asarray(img_pad_value, dtype=np.uint8)

    def __call__(self, sample: dict) -> dict:
        h, w = sample['img'].shape[:2]
        ch, cw = self.size or (h, w)
        ph, pw = max(self.pad, ch - h), max(self.pad, cw - w)
        sample = self._pad(sample, ph, pw)
        H, W = sample['img'].shape[:2]
        y, x = self.randint(H - ch + 1), self.randint(W - cw + 1)
        for key in ('img',) + PIXEL_MAPS:
            if key in sample:
                sample[key] = np.ascontiguousarray(sample[key][y:y + ch, x:x + cw])
        return sample

    def _pad(self, sample: dict, ph: int, pw: int) -> dict:
        if ph == 0 and pw == 0:
            return sample
        widths = ((ph, ph), (pw, pw))
        if self.img_pad_mode == 'reflect':
            sample['img'] = np.pad(sample['img'], widths + ((0, 0),), mode='reflect')
        elif self.img_pad_mode == 'mean':
            img = sample['img']
            out = np.empty((img.shape[0] + 2 * ph, img.shape[1] + 2 * pw, img.shape[2]),
                           img.dtype)
            out[:] = self.img_pad_value
            out[ph:ph + img.shape[0], pw:pw + img.shape[1]] = img
            sample['img'] = out
        else:  # 'zero' ('constant': the former name)
            sample['img'] = np.pad(sample['img'], widths + ((0, 0),), mode='constant')
        for key in PIXEL_MAPS:
            if key in sample:
                sample[key] = np.pad(sample[key], widths, mode='constant',
                                     constant_values=_MAP_FILL[key])
        return sample


@TRANSFORMS.register_module()
class MarkValidPixels:
    """Add ``valid`` = 1 on every pixel; later geometric transforms move it with the image and
    pad it with 0, so after a crop it marks the image's own pixels (GETAM's ROI for the
    dense-CRF loss)."""

    def __call__(self, sample: dict) -> dict:
        sample['valid'] = np.ones(sample['img'].shape[:2], np.uint8)
        return sample


@TRANSFORMS.register_module()
class PackInputs:
    """Turn arrays into tensors: ``img`` to (3, H, W) uint8, ``labels`` to float, maps to long.

    Only ``keys`` (plus ``img_id``) are kept, so batches collate cleanly.
    """

    def __init__(self, keys: Sequence[str] = ('img', 'labels')):
        self.keys = tuple(keys)

    def __call__(self, sample: dict) -> dict:
        out = {'img_id': sample['img_id']}
        for key in self.keys:
            value = sample[key]
            if key == 'img':
                out[key] = torch.from_numpy(np.ascontiguousarray(value.transpose(2, 0, 1)))
            elif key == 'labels':
                out[key] = torch.as_tensor(value, dtype=torch.float32)
            elif key in PIXEL_MAPS:
                out[key] = torch.from_numpy(np.ascontiguousarray(value)).long()
            else:
                out[key] = torch.as_tensor(value)
        return out
