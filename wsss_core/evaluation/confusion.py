"""Confusion-matrix segmentation metrics (mIoU, pixel accuracy).

Convention (VOC; see ``docs/methods/baseline.md#14-miou-and-its-conventions`` and
``docs/miou_conventions.md``):

* ``C[g, p]`` counts pixels with ground truth ``g`` and prediction ``p`` over all pixels whose
  ground truth lies in ``[0, n)``; the ignore value 255 (and anything else outside the range)
  in the ground truth is skipped.
* A predicted ``ignore_index`` (an unlabelled pixel of a pseudo label) is counted as
  background (``pred_ignore='background'``, irn's ``eval_sem_seg`` convention) or the pixel is
  left out (``pred_ignore='skip'``). Any other prediction outside ``[0, n)`` is an error.
* ``IoU_k = C_kk / (sum_j C_kj + sum_i C_ik - C_kk)``, NaN where the denominator is 0
  (class absent from both ground truth and prediction).
* ``mIoU``: by default (``union``) ``nanmean_k IoU_k``, so a class absent from both does not
  count; :mod:`.miou_conventions` gives the two other references' means (``gt_present``,
  deeplab-pytorch; ``all_classes``, psa-style ``eval.py``) and frequency-weighted IoU, and
  :meth:`ConfusionMatrix.summary` reports all of them, the configured one as ``miou``.
* ``pixel accuracy = trace(C) / sum(C)``; ``mean class accuracy = nanmean_k C_kk / sum_j C_kj``.

All values are fractions in [0, 1]. The matrix is built with one ``np.bincount`` over the
flattened index ``n * gt + pred``.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence

import numpy as np

from .miou_conventions import check_convention, convention_metrics, mean_iou

__all__ = ['confusion_matrix', 'iou_from_confusion', 'nanmean_or_nan', 'ConfusionMatrix',
           'PRED_IGNORE_MODES']

PRED_IGNORE_MODES = ('background', 'skip')


def _check_mode(pred_ignore: str) -> None:
    if pred_ignore not in PRED_IGNORE_MODES:
        raise ValueError(f"pred_ignore must be one of {PRED_IGNORE_MODES}, got {pred_ignore!r}")


def confusion_matrix(pred, gt, num_classes: int, ignore_index: int = 255,
                     pred_ignore: str = 'background') -> np.ndarray:
    """Return the ``(n, n)`` int64 matrix ``C[gt, pred]`` of one prediction / ground-truth pair.

    Pixels whose ``gt`` is outside ``[0, n)`` (e.g. 255) are skipped. A ``pred`` equal to
    ``ignore_index`` is read as background (0) or skipped, per ``pred_ignore``.
    """
    _check_mode(pred_ignore)
    n = int(num_classes)
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f'pred and gt shapes differ: {pred.shape} vs {gt.shape}')
    pred = pred.reshape(-1).astype(np.int64, copy=False)
    gt = gt.reshape(-1).astype(np.int64, copy=False)
    keep = (gt >= 0) & (gt < n)
    ignored = pred == ignore_index
    if pred_ignore == 'skip':
        keep &= ~ignored
    else:
        pred = np.where(ignored, 0, pred)
    pred, gt = pred[keep], gt[keep]
    if pred.size and (pred.min() < 0 or pred.max() >= n):
        bad = np.unique(pred[(pred < 0) | (pred >= n)])
        raise ValueError(f'prediction value(s) {bad.tolist()[:10]} outside 0..{n - 1} '
                         f'(and {ignore_index} = ignore)')
    return np.bincount(n * gt + pred, minlength=n * n).reshape(n, n).astype(np.int64)


def iou_from_confusion(conf: np.ndarray) -> np.ndarray:
    """``IoU_k = C_kk / (row_k + col_k - C_kk)`` as float64, NaN where the denominator is 0."""
    conf = np.asarray(conf, dtype=np.float64)
    diag = np.diag(conf)
    denom = conf.sum(1) + conf.sum(0) - diag
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(denom > 0, diag / np.where(denom > 0, denom, 1), np.nan)


def nanmean_or_nan(values) -> float:
    """Mean over the non-NaN entries; NaN (without a warning) if there are none."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float('nan')


def _json_float(x) -> Optional[float]:
    x = float(x)
    return None if math.isnan(x) else x


class ConfusionMatrix:
    """Accumulates ``C[gt, pred]`` over images; see the module docstring for the formulas."""

    def __init__(self, num_classes: int, ignore_index: int = 255,
                 pred_ignore: str = 'background', convention: Optional[str] = None):
        _check_mode(pred_ignore)
        self.convention = check_convention(convention)
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.pred_ignore = pred_ignore
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self.num_images = 0

    def update(self, pred, gt) -> 'ConfusionMatrix':
        """Add one image (or any batch of equally shaped pred / gt arrays)."""
        self.matrix += confusion_matrix(pred, gt, self.num_classes, self.ignore_index,
                                        self.pred_ignore)
        self.num_images += 1
        return self

    def add_matrix(self, matrix: np.ndarray, num_images: int = 1) -> 'ConfusionMatrix':
        """Add a precomputed ``(n, n)`` matrix (e.g. from a threshold sweep)."""
        matrix = np.asarray(matrix, dtype=np.int64)
        if matrix.shape != self.matrix.shape:
            raise ValueError(f'matrix shape {matrix.shape} != {self.matrix.shape}')
        self.matrix += matrix
        self.num_images += int(num_images)
        return self

    def merge(self, other: 'ConfusionMatrix') -> 'ConfusionMatrix':
        """Add another accumulator's counts (same number of classes) into this one."""
        if other.num_classes != self.num_classes:
            raise ValueError(f'cannot merge {other.num_classes}-class matrix into '
                             f'{self.num_classes}-class matrix')
        return self.add_matrix(other.matrix, other.num_images)

    def reset(self) -> None:
        self.matrix[:] = 0
        self.num_images = 0

    def iou(self) -> np.ndarray:
        """Per-class IoU, NaN for a class absent from both ground truth and prediction."""
        return iou_from_confusion(self.matrix)

    def miou(self, convention: Optional[str] = None) -> float:
        """The mIoU under ``convention`` (default: this matrix's, see :mod:`.miou_conventions`);
        ``union`` is the NaN-mean of :meth:`iou`."""
        return mean_iou(self.matrix, self.convention if convention is None else convention)

    def pixel_accuracy(self) -> float:
        """``trace(C) / sum(C)``; NaN if no pixel was counted."""
        total = self.matrix.sum()
        return float(np.trace(self.matrix) / total) if total else float('nan')

    def class_accuracy(self) -> np.ndarray:
        """Per-class recall ``C_kk / row_k``, NaN for classes absent from the ground truth."""
        rows = self.matrix.sum(1).astype(np.float64)
        with np.errstate(divide='ignore', invalid='ignore'):
            return np.where(rows > 0, np.diag(self.matrix) / np.where(rows > 0, rows, 1), np.nan)

    def summary(self, class_names: Optional[Sequence[str]] = None,
                convention: Optional[str] = None) -> Dict:
        """JSON-ready dict: ``miou`` (under ``convention``, default this matrix's),
        ``miou_convention``, ``miou_by_convention``, ``fw_iou``, per-class IoU by name,
        accuracies, counts (NaN -> None)."""
        names = _class_names(class_names, self.num_classes)
        iou = self.iou()
        return {
            **convention_metrics(self.matrix, self.convention if convention is None
                                 else convention),
            'iou': {name: _json_float(v) for name, v in zip(names, iou)},
            'pixel_accuracy': _json_float(self.pixel_accuracy()),
            'mean_class_accuracy': _json_float(nanmean_or_nan(self.class_accuracy())),
            'num_images': int(self.num_images),
            'num_pixels': int(self.matrix.sum()),
            'gt_pixels': {name: int(v) for name, v in zip(names, self.matrix.sum(1))},
            'pred_pixels': {name: int(v) for name, v in zip(names, self.matrix.sum(0))},
            'num_classes_present': int(np.count_nonzero(~np.isnan(iou))),
            'num_classes_in_gt': int(np.count_nonzero(self.matrix.sum(1))),
        }


def _class_names(class_names: Optional[Sequence[str]], n: int) -> list:
    if class_names is None:
        return [str(i) for i in range(n)]
    class_names = list(class_names)
    if len(class_names) != n:
        raise ValueError(f'{len(class_names)} class names for {n} classes')
    return class_names
