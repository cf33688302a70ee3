"""Boxes from score maps, inclusive-pixel IoU and GT box rescaling
(docs/wsol_evaluation.md#protocol-per-image, steps 3-4).

Box convention everywhere: ``(x0, y0, x1, y1)`` in pixels, both corners inside the box
(a box covers ``(x1 - x0 + 1) * (y1 - y0 + 1)`` pixels).
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import cv2
import numpy as np

#: the box given when no pixel passes a threshold
EMPTY_BOX = (0, 0, 0, 0)


def cam_thresholds(interval: float = 0.01) -> np.ndarray:
    """The CAM thresholds tau = ``numpy.arange(0, 1, interval)`` (0.01 -> 100 values).

    Built with ``arange`` exactly, so that ``int(tau * 255)`` truncates the same way as in
    the reference protocol (e.g. tau[7] = 0.07000000000000001).
    """
    interval = float(interval)
    if not 0.0 < interval < 1.0:
        raise ValueError(f'cam_curve_interval must lie in (0, 1), got {interval}')
    return np.arange(0, 1, interval)


def check_scoremap(scoremap) -> np.ndarray:
    """Return ``scoremap`` as a float array after checking it is (H, W) in [0, 1] without NaN."""
    arr = np.asarray(scoremap)
    if arr.ndim != 2:
        raise ValueError(f'a score map must be 2-D (H, W), got shape {arr.shape}')
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f'a score map must be float, got {arr.dtype}')
    if np.isnan(arr).any():
        raise ValueError('the score map contains NaN: normalise it first')
    if arr.size and (arr.min() < 0 or arr.max() > 1):
        raise ValueError(f'score map values must lie in [0, 1], got [{arr.min()}, {arr.max()}]:'
                         ' normalise it first (minmax_normalize / percentile_normalize)')
    return arr


def threshold_contours(scoremap, thresholds: Sequence[float]) -> List[tuple]:
    """The OpenCV contours of the thresholded score map, one tuple of contours per tau.

    The map is quantised to ``g = uint8(scoremap * 255)`` (truncation); the binary mask at tau
    is ``g > int(tau * max(g))`` (strictly above); contours are found in tree mode
    (``RETR_TREE``: outer borders and holes) with simple chain approximation.
    """
    gray = (check_scoremap(scoremap) * 255).astype(np.uint8)
    peak = int(gray.max()) if gray.size else 0
    out = []
    for tau in thresholds:
        mask = (gray > int(tau * peak)).astype(np.uint8) * 255
        contours, _ = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
        out.append(tuple(contours))
    return out


def boxes_from_contours(contours: Sequence, width: int, height: int,
                        multi_contour: bool) -> np.ndarray:
    """Boxes (K, 4) int64 of one threshold's contours.

    No contour -> the single box (0, 0, 0, 0).  ``multi_contour=False`` keeps only the
    contour of largest ``cv2.contourArea`` (the first one on ties); otherwise every contour
    gives a box.  A contour's box is its bounding rectangle ``(x, y, x + w, y + h)`` with
    ``x1`` clipped to ``width - 1`` and ``y1`` to ``height - 1``.
    """
    if len(contours) == 0:
        return np.array([EMPTY_BOX], dtype=np.int64)
    if not multi_contour:
        contours = [max(contours, key=cv2.contourArea)]
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        boxes.append((x, y, min(x + w, width - 1), min(y + h, height - 1)))
    return np.array(boxes, dtype=np.int64)


def boxes_from_scoremap(scoremap, thresholds: Sequence[float],
                        multi_contour: bool) -> List[np.ndarray]:
    """One (K_t, 4) box array per threshold tau (see :func:`threshold_contours` and
    :func:`boxes_from_contours`); K_t = 1 in single-contour mode."""
    height, width = np.shape(scoremap)
    return [boxes_from_contours(c, width, height, multi_contour)
            for c in threshold_contours(scoremap, thresholds)]


def box_iou_inclusive(boxes_a, boxes_b) -> np.ndarray:
    """IoU matrix (Na, Nb) with inclusive pixel areas:

        I = max(0, min(x1a, x1b) - max(x0a, x0b) + 1) * max(0, min(y1a, y1b) - max(y0a, y0b) + 1)
        A = (x1 - x0 + 1) * (y1 - y0 + 1)
        IoU = I / (A_a + A_b - I)        (0 where the denominator is <= 0)
    """
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)[:, None, :]
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)[None, :, :]
    iw = np.maximum(0.0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
    ih = np.maximum(0.0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def best_iou_per_threshold(boxes_per_threshold: Sequence[np.ndarray], gt_boxes) -> np.ndarray:
    """(T,) the best IoU over all (estimated box, GT box) pairs at each threshold."""
    gt = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    if gt.shape[0] == 0:
        raise ValueError('an image needs at least one ground-truth box')
    return np.array([box_iou_inclusive(boxes, gt).max() for boxes in boxes_per_threshold])


def rescale_boxes(boxes, from_size: Tuple[int, int], to_size: Tuple[int, int]) -> np.ndarray:
    """Rescale boxes from an image of ``from_size = (w, h)`` to ``to_size = (w', h')``:

        x' = int(x * w' / w),   y' = int(y * h' / h)      (truncation toward zero)

    Returns int64 (N, 4).
    """
    fw, fh = (float(v) for v in from_size)
    tw, th = (float(v) for v in to_size)
    if fw <= 0 or fh <= 0:
        raise ValueError(f'image size must be positive, got {from_size}')
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    # (x * w') / w, in this order: x * (w' / w) rounds differently at exact integers
    out = np.empty_like(b)
    out[:, 0::2] = b[:, 0::2] * tw / fw
    out[:, 1::2] = b[:, 1::2] * th / fh
    return np.trunc(out).astype(np.int64)
