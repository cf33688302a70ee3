"""Saliency source base: a map S(x) in 0..255 (255 = salient) for one image.

A source is called as ``source(img_id, img) -> uint8 (H, W)`` with ``img`` the RGB uint8
``(H, W, 3)`` image; the map always has the image's size.  Refiners call
:meth:`SaliencySource.from_sample` with the whole sample dict instead, so that a source can
also read what the dataset put there (``needs`` lists the sample keys it reads).
"""
from __future__ import annotations

import numpy as np


class SaliencySource:
    """Subclasses implement :meth:`__call__` (and may override :meth:`from_sample`)."""

    needs: tuple = ('img',)

    def __call__(self, img_id: str, img: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def from_sample(self, sample: dict) -> np.ndarray:
        """The map for a refiner's sample (``img_id``, ``img``), checked to be uint8 (H, W)."""
        img = sample['img']
        return check_saliency(self(sample['img_id'], img), img.shape[:2],
                              f"saliency of {sample['img_id']} from {type(self).__name__}")


def check_saliency(sal, shape, what: str = 'saliency map') -> np.ndarray:
    """Return ``sal`` as a uint8 (H, W) array, or raise ValueError if it is not of ``shape``."""
    sal = np.asarray(sal)
    if sal.ndim != 2 or sal.shape != tuple(shape):
        raise ValueError(f'{what} is {sal.shape}, expected {tuple(shape)}')
    if sal.dtype != np.uint8:
        raise ValueError(f'{what} has dtype {sal.dtype}, expected uint8 (0..255)')
    return sal


def to_uint8(sal: np.ndarray) -> np.ndarray:
    """Min-max scale a float map to 0..255 uint8: ``round(255 (S - min) / (max - min))``.

    A constant (or empty) map becomes all zeros: it has no salient region.
    """
    sal = np.asarray(sal, dtype=np.float64)
    if sal.size == 0:
        return np.zeros(sal.shape, dtype=np.uint8)
    sal = np.nan_to_num(sal, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(sal.min()), float(sal.max())
    if hi - lo <= 1e-12:
        return np.zeros(sal.shape, dtype=np.uint8)
    return np.rint((sal - lo) * (255.0 / (hi - lo))).astype(np.uint8)
