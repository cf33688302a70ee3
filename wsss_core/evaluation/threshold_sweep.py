"""Background-threshold sweep of CAM quality: one confusion matrix per threshold, one pass.

For every threshold ``t`` of the grid the prediction is the :func:`~.cam_labels.cam_to_label`
rule (background plane ``t`` in front of the CAMs, argmax), and ``C_t[gt, pred]`` is
accumulated as in :mod:`.confusion`. The curve ``t -> mIoU(C_t)`` is reported, the mIoU
under the sweep's ``convention`` (:mod:`.miou_conventions`, default ``union``), and its
maximum **as an oracle**: picking ``t`` by mIoU uses the ground truth, which a weakly
supervised method must not see (ReCAM issue #3;
``docs/methods/baseline.md#43-cam-evaluation-and-the-threshold-sweep``).

Default grid: ``DEFAULT_THRESHOLDS = 0.05, 0.10, ..., 0.60`` (``np.arange(0.05, 0.61, 0.05)``,
12 values, rounded to 10 decimals); it covers irn's fixed 0.15 and the range where CAM
methods peak. ``FINE_THRESHOLDS = 0.00, 0.01, ..., 0.59`` is SEAM's ``--curve`` grid.

Single pass: the per-pixel ``m(x) = max_k M_k(x)`` and the argmax class ``f(x)`` are
computed once per image. A pixel is foreground at ``t_i`` iff ``t_i < m(x)``; with the
thresholds sorted, ``b(x) = #{i : t_i < m(x)}`` (``searchsorted``) is the number of
thresholds at which it is foreground. One ``bincount`` gives ``H_fg[b, g, f]`` and
``H_bg[b, g]``; then::

    C_i[g, f] = sum_{b > i} H_fg[b, g, f]         (foreground at t_i)
    C_i[g, 0] += sum_{b <= i} H_bg[b, g]          (background at t_i)

so the cost is O(pixels + T n^2) per image instead of O(T * pixels).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .cam_labels import cam_max_argmax
from .confusion import ConfusionMatrix, _class_names, _json_float
from .miou_conventions import check_convention, convention_metrics, mean_iou

__all__ = ['ThresholdSweep', 'DEFAULT_THRESHOLDS', 'FINE_THRESHOLDS']

DEFAULT_THRESHOLDS = np.round(np.arange(0.05, 0.61, 0.05), 10)
FINE_THRESHOLDS = np.round(np.arange(60) / 100.0, 10)


class ThresholdSweep:
    """Accumulate ``C_t`` for every background threshold ``t`` (sorted ascending)."""

    def __init__(self, num_classes: int, thresholds: Optional[Sequence[float]] = None,
                 ignore_index: int = 255, convention: Optional[str] = None):
        self.convention = check_convention(convention)
        ths = DEFAULT_THRESHOLDS if thresholds is None else thresholds
        ths = np.unique(np.asarray(ths, dtype=np.float64).reshape(-1))  # sorted, no duplicates
        if ths.size == 0:
            raise ValueError('thresholds must not be empty')
        self.num_classes = int(num_classes)
        self.thresholds = ths
        self.ignore_index = ignore_index
        n, t = self.num_classes, ths.size
        self._hist_fg = np.zeros((t + 1, n, n), dtype=np.int64)
        self._hist_bg = np.zeros((t + 1, n), dtype=np.int64)
        self.num_images = 0

    def update(self, cams: np.ndarray, class_ids: Sequence[int], gt: np.ndarray) -> None:
        """Add one image: ``cams`` (K, H, W) normalised, ``class_ids`` (K,) 0-based, ``gt`` (H, W)."""
        n, t = self.num_classes, self.thresholds.size
        gt = np.asarray(gt)
        cmax, fg = cam_max_argmax(cams, class_ids)
        if cmax.shape != gt.shape:
            raise ValueError(f'CAM size {cmax.shape} != ground-truth size {gt.shape}')
        if np.size(class_ids) and int(np.max(class_ids)) + 1 >= n:
            raise ValueError(f'class id {int(np.max(class_ids))} outside 0..{n - 2}')
        gt = gt.reshape(-1).astype(np.int64)
        keep = (gt >= 0) & (gt < n)
        gt, fg, cmax = gt[keep], fg.reshape(-1)[keep], cmax.reshape(-1)[keep]
        b = np.searchsorted(self.thresholds, cmax, side='left')  # #thresholds strictly below m
        self._hist_fg += np.bincount((b * n + gt) * n + fg,
                                     minlength=(t + 1) * n * n).reshape(t + 1, n, n)
        self._hist_bg += np.bincount(b * n + gt, minlength=(t + 1) * n).reshape(t + 1, n)
        self.num_images += 1

    def merge(self, other: 'ThresholdSweep') -> 'ThresholdSweep':
        """Add another sweep's counts (same classes and thresholds)."""
        if other.num_classes != self.num_classes or not np.array_equal(other.thresholds,
                                                                       self.thresholds):
            raise ValueError('cannot merge sweeps with different classes or thresholds')
        self._hist_fg += other._hist_fg
        self._hist_bg += other._hist_bg
        self.num_images += other.num_images
        return self

    def matrices(self) -> np.ndarray:
        """``(T, n, n)`` int64: ``C_t[gt, pred]`` for each threshold in :attr:`thresholds`."""
        fg_suffix = np.cumsum(self._hist_fg[::-1], axis=0)[::-1]   # [i] = sum_{b >= i}
        mats = fg_suffix[1:].copy()                                # [i] = sum_{b > i}
        mats[:, :, 0] += np.cumsum(self._hist_bg, axis=0)[:-1]     # [i] = sum_{b <= i}
        return mats

    def confusion_at(self, threshold: float) -> ConfusionMatrix:
        """The accumulated :class:`ConfusionMatrix` of one grid threshold."""
        hits = np.flatnonzero(np.isclose(self.thresholds, threshold, rtol=0, atol=1e-9))
        if hits.size == 0:
            raise KeyError(f'threshold {threshold} is not in the grid {self.thresholds.tolist()}')
        cm = ConfusionMatrix(self.num_classes, self.ignore_index, convention=self.convention)
        return cm.add_matrix(self.matrices()[hits[0]], self.num_images)

    def mious(self) -> np.ndarray:
        """mIoU at each grid threshold, under the sweep's convention."""
        return np.array([mean_iou(m, self.convention) for m in self.matrices()])

    def curve(self) -> List[Tuple[float, float]]:
        """``[(t, mIoU at t), ...]`` in ascending ``t`` (the sweep's convention)."""
        return [(float(t), float(v)) for t, v in zip(self.thresholds, self.mious())]

    def best(self) -> Dict:
        """The best threshold **chosen with the ground truth** (``oracle=True``).

        The mIoU maximised is the sweep's ``convention`` (named in ``miou_convention``). Ties
        go to the lowest threshold; with no pixels counted, ``miou`` is NaN (0 under
        ``all_classes``) and the threshold is the first of the grid.
        """
        mious = self.mious()
        i = 0 if np.all(np.isnan(mious)) else int(np.nanargmax(mious))
        return {'threshold': float(self.thresholds[i]), 'miou': float(mious[i]),
                'miou_convention': self.convention, 'oracle': True}

    def summary(self, class_names: Optional[Sequence[str]] = None) -> Dict:
        """JSON-ready: the curve, and the oracle best with its per-class IoU (NaN -> None)."""
        best = self.best()
        names = _class_names(class_names, self.num_classes)
        at_best = self.confusion_at(best['threshold'])
        iou = at_best.iou()
        return {
            'miou_convention': self.convention,
            'curve': [{'threshold': t, 'miou': _json_float(v)} for t, v in self.curve()],
            'best': {'threshold': best['threshold'],
                     **convention_metrics(at_best.matrix, self.convention),
                     'oracle': True, 'iou': {k: _json_float(v) for k, v in zip(names, iou)}},
            'num_images': int(self.num_images),
        }
