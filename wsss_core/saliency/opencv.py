"""Classical saliency estimators of OpenCV's ``cv2.saliency`` (opencv-contrib), for data
that ships no saliency maps.

* :class:`SpectralResidualSaliency` (Hou & Zhang, CVPR 2007): on a small grayscale copy
  ``I`` (64 x 64), with ``A = log |F(I)|`` and ``P = angle F(I)``::

      S = G * |F^-1(exp((A - h_3 * A) + i P))|^2

  (``h_3`` a 3x3 mean filter, ``G`` a Gaussian), resized back to the image.
* :class:`FineGrainedSaliency` (Montabone & Soto, 2010): centre-surround differences of
  box-filtered intensity at several scales, on the full-size grayscale image.

Both outputs are min-max scaled per image to 0..255 uint8 (a flat image gives zeros).

These are low-level contrast detectors, **much weaker than the learned salient-object
detectors** (DSS, PoolNet, ...) whose maps OAA, NSROM, EDAM and GETAM use: they fire on
edges and textures rather than on whole objects. Use them to run saliency-based refiners
on data without maps, not to reproduce published numbers.
"""
from __future__ import annotations

import numpy as np

from ..registry import SALIENCY_SOURCES
from .base import SaliencySource, to_uint8


def _cv2_saliency():
    try:
        import cv2
        return cv2.saliency
    except (ImportError, AttributeError) as exc:
        raise ImportError('cv2.saliency is missing: it comes with the OpenCV contrib modules; '
                          'pip install opencv-contrib-python-headless') from exc


class _OpenCVSaliency(SaliencySource):
    """Shared body: RGB -> BGR, ``computeSaliency``, min-max to uint8."""

    needs = ('img',)
    _factory = ''

    def __init__(self):
        self._algo = None  # created lazily: cv2 objects do not pickle

    def _algorithm(self):
        if self._algo is None:
            self._algo = getattr(_cv2_saliency(), self._factory)()
        return self._algo

    def __call__(self, img_id: str, img: np.ndarray) -> np.ndarray:
        img = np.asarray(img)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f'{type(self).__name__}: image {img_id} must be uint8 (H, W, 3), '
                             f'got {img.dtype} {img.shape}')
        if (img == img[:1, :1]).all():  # flat: nothing stands out
            return np.zeros(img.shape[:2], dtype=np.uint8)
        bgr = np.ascontiguousarray(img[..., ::-1])
        ok, sal = self._algorithm().computeSaliency(bgr)
        if not ok:
            raise RuntimeError(f'{type(self).__name__} failed on image {img_id}')
        sal = np.asarray(sal)
        if sal.shape != img.shape[:2]:
            from .from_disk import resize_map
            sal = resize_map(sal.astype(np.float32), img.shape[:2])
        return to_uint8(sal)

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != '_algo'}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._algo = None

    def __repr__(self) -> str:
        return f'{type(self).__name__}()'


@SALIENCY_SOURCES.register_module()
class SpectralResidualSaliency(_OpenCVSaliency):
    """Spectral residual saliency (cv2.saliency.StaticSaliencySpectralResidual); see the module
    docstring. Much weaker than a learned salient-object detector."""

    _factory = 'StaticSaliencySpectralResidual_create'


@SALIENCY_SOURCES.register_module()
class FineGrainedSaliency(_OpenCVSaliency):
    """Fine-grained centre-surround saliency (cv2.saliency.StaticSaliencyFineGrained); see the
    module docstring. Much weaker than a learned salient-object detector."""

    _factory = 'StaticSaliencyFineGrained_create'
