"""CAMs to a label map with a constant background plane (irn ``eval_cam`` rule).

Given normalised CAMs ``M_k`` (``K x H x W``, values in [0, 1]) of the image's foreground
classes ``class_ids`` (0-based) and a background threshold ``t``::

    i*(x)     = argmax over [t, M_1(x), ..., M_K(x)]    (first index wins a tie)
    label(x)  = 0                    if i*(x) = 0
                class_ids[i* - 1] + 1  otherwise

Because the background plane is first, a pixel is foreground iff ``max_k M_k(x) > t``
(strictly), and then it gets the class of ``argmax_k M_k(x)``. Comparisons are done in
float64 so the rule is the same whatever the CAM dtype (float16 / float32 on disk).

This module is shared by the CAM threshold sweep (:mod:`.threshold_sweep`) and by the
background-threshold refiner.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

__all__ = ['cam_to_label', 'cam_max_argmax', 'resize_cams']


def resize_cams(cams: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """Bilinearly resize ``(K, h, w)`` CAMs to ``(K, H, W)`` (half-pixel centres, like
    ``F.interpolate(mode='bilinear', align_corners=False)``)."""
    import cv2  # local: keep this module importable without OpenCV loaded

    cams = np.asarray(cams, dtype=np.float32)
    h, w = int(shape[0]), int(shape[1])
    if cams.shape[1:] == (h, w):
        return cams
    out = np.empty((cams.shape[0], h, w), dtype=np.float32)
    for k in range(cams.shape[0]):
        out[k] = cv2.resize(cams[k], (w, h), interpolation=cv2.INTER_LINEAR)
    return out


def cam_max_argmax(cams: np.ndarray, class_ids: Sequence[int]
                   ) -> Tuple[np.ndarray, np.ndarray]:
    """Return ``(max_k M_k as float64 (H, W), label of argmax_k as int64 (H, W))``.

    The label is ``class_ids[argmax] + 1``; with ``K = 0`` the max is ``-inf`` everywhere
    (every pixel is background at any threshold); a NaN maximum is also set to ``-inf``.
    """
    cams = np.asarray(cams)
    class_ids = np.asarray(class_ids, dtype=np.int64).reshape(-1)
    if cams.ndim != 3 or cams.shape[0] != class_ids.size:
        raise ValueError(f'cams must be (K, H, W) with K = len(class_ids); got {cams.shape} '
                         f'and {class_ids.size} ids')
    if cams.shape[0] == 0:
        shape = cams.shape[1:]
        return np.full(shape, -np.inf), np.zeros(shape, dtype=np.int64)
    idx = cams.argmax(0)
    cmax = np.take_along_axis(cams, idx[None], 0)[0].astype(np.float64)
    cmax[np.isnan(cmax)] = -np.inf  # a NaN maximum never beats the background plane
    return cmax, (class_ids + 1)[idx]


def cam_to_label(cams: np.ndarray, class_ids: Sequence[int], threshold: float,
                 shape: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Label map (uint8, 0 = background, ``c + 1`` = class ``c``) by the rule above.

    ``shape`` = ``(H, W)``: the CAMs are first resized bilinearly to that size if they differ.
    """
    cams = np.asarray(cams)
    if shape is not None and cams.ndim == 3 and cams.shape[1:] != tuple(shape):
        cams = resize_cams(cams, shape)
    cmax, fg = cam_max_argmax(cams, class_ids)
    return np.where(cmax > float(threshold), fg, 0).astype(np.uint8)
