"""Streaming WSOL metrics: box accuracy over CAM thresholds, Top-k Loc, and PxAP
(docs/wsol_evaluation.md#metrics-all-in-percent).

:class:`BoxAccumulator` takes one image at a time (a normalised score map at the evaluation
size and its GT boxes in the same frame) and keeps, per CAM threshold tau and IoU threshold
delta, the number of images whose best box IoU reaches delta:

    BoxAcc(tau, delta) = 100 / N * #{ i : max_{b in B_i(tau), g in G_i} IoU(b, g) >= delta / 100 }
    MaxBoxAcc(delta)   = max_tau BoxAcc(tau, delta)
    MaxBoxAccV2        = mean_{delta in {30, 50, 70}} MaxBoxAcc(delta)
    GT-known Loc       = MaxBoxAcc(50)
    Top-k Loc(tau)     = 100 / N * #{ i : y_i in top-k(scores_i) and IoU_i(tau) >= 0.5 }

:class:`PxAPAccumulator` (pixel average precision, OpenImages protocol) histograms the
scores of GT-foreground and GT-background pixels (ignored pixels left out) into the bins
``[tau_0, tau_1), ..., [tau_{T-1}, 1), [1, 2), [2, 3]`` (the last bin is always empty; it is
kept because it shifts the sum below by one bin, as in the reference), accumulates TP and FP
from the highest bin down, and

    precision_k = TP_k / (TP_k + FP_k),   recall_k = TP_k / P
    PxAP = 100 * sum_{k >= 1, TP_k + FP_k > 0} precision_k * (recall_k - recall_{k-1})
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from .boxes import best_iou_per_threshold, boxes_from_scoremap, check_scoremap

#: IoU a box needs for Top-1 / Top-5 Loc
LOC_IOU = 0.5


def tau_index(thresholds: Sequence[float], tau: float) -> int:
    """Index of the threshold nearest to ``tau``; an error when tau is off the grid."""
    thresholds = np.asarray(thresholds, dtype=np.float64)
    index = int(np.argmin(np.abs(thresholds - tau)))
    step = thresholds[1] - thresholds[0] if thresholds.size > 1 else 1.0
    if abs(thresholds[index] - tau) > step / 2:
        raise ValueError(f'tau {tau} is not on the CAM threshold grid '
                         f'[{thresholds[0]}, {thresholds[-1]}] (step {step})')
    return index


class BoxAccumulator:
    """Counts per (tau, delta) over images, plus Top-1/Top-5 Loc counts per tau.

    Args:
        thresholds: the CAM thresholds tau (see :func:`~.boxes.cam_thresholds`).
        iou_thresholds: deltas in percent.
        multi_contour: boxes from all contours (MaxBoxAccV2) or from the largest one.
    """

    def __init__(self, thresholds: Sequence[float], iou_thresholds: Sequence[int] = (30, 50, 70),
                 multi_contour: bool = True):
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self.iou_thresholds = tuple(int(d) for d in iou_thresholds)
        self.multi_contour = bool(multi_contour)
        t = self.thresholds.size
        self.count = 0
        self.num_correct = np.zeros((len(self.iou_thresholds), t), dtype=np.int64)
        self.num_with_cls = 0
        self.top1_cls_hits = 0
        self.top5_cls_hits = 0
        self.top1_loc_hits = np.zeros(t, dtype=np.int64)
        self.top5_loc_hits = np.zeros(t, dtype=np.int64)

    # ------------------------------------------------------------------ input
    def update(self, scoremap, gt_boxes, top1_correct: Optional[bool] = None,
               top5_correct: Optional[bool] = None) -> np.ndarray:
        """Add one image: its normalised score map and GT boxes (N, 4) in the map's frame.

        Returns the best IoU per tau, (T,).
        """
        boxes = boxes_from_scoremap(check_scoremap(scoremap), self.thresholds,
                                    self.multi_contour)
        ious = best_iou_per_threshold(boxes, gt_boxes)
        self.add_ious(ious, top1_correct, top5_correct)
        return ious

    def add_ious(self, ious, top1_correct: Optional[bool] = None,
                 top5_correct: Optional[bool] = None) -> None:
        """Add one image from its best IoU per tau (T,) (and its class correctness)."""
        ious = np.asarray(ious, dtype=np.float64).reshape(-1)
        if ious.size != self.thresholds.size:
            raise ValueError(f'{ious.size} IoUs for {self.thresholds.size} thresholds')
        for row, delta in enumerate(self.iou_thresholds):
            self.num_correct[row] += ious >= delta / 100
        self.count += 1
        if (top1_correct is None) != (top5_correct is None):
            raise ValueError('give both top1_correct and top5_correct, or neither')
        if top1_correct is not None:
            located = ious >= LOC_IOU
            self.num_with_cls += 1
            self.top1_cls_hits += bool(top1_correct)
            self.top5_cls_hits += bool(top5_correct)
            self.top1_loc_hits += located & bool(top1_correct)
            self.top5_loc_hits += located & bool(top5_correct)

    # ------------------------------------------------------------------ box accuracy
    def _row(self, delta: int) -> int:
        if int(delta) not in self.iou_thresholds:
            raise KeyError(f'IoU threshold {delta} not accumulated; have {self.iou_thresholds}')
        if self.count == 0:
            raise ValueError('no image was accumulated')
        return self.iou_thresholds.index(int(delta))

    def box_acc(self, delta: int) -> np.ndarray:
        """BoxAcc(tau, delta) for every tau, in percent (T,)."""
        return self.num_correct[self._row(delta)] * 100.0 / self.count

    def best_tau_index(self, delta: int) -> int:
        """The first tau index where BoxAcc(tau, delta) is largest."""
        return int(np.argmax(self.box_acc(delta)))

    def best_tau(self, delta: int) -> float:
        return float(self.thresholds[self.best_tau_index(delta)])

    def max_box_acc(self, delta: int = 50) -> float:
        """MaxBoxAcc(delta) = max_tau BoxAcc(tau, delta), in percent."""
        return float(self.box_acc(delta).max())

    def max_box_acc_v2(self) -> float:
        """Mean of MaxBoxAcc over the accumulated deltas, in percent."""
        return float(np.mean([self.max_box_acc(d) for d in self.iou_thresholds]))

    def gt_known_loc(self) -> float:
        """GT-known Loc = MaxBoxAcc(50)."""
        return self.max_box_acc(50)

    # ------------------------------------------------------------------ classification
    @property
    def has_cls(self) -> bool:
        """Whether every accumulated image came with its class correctness."""
        return self.count > 0 and self.num_with_cls == self.count

    def _need_cls(self) -> None:
        if not self.has_cls:
            raise ValueError(f'class correctness was given for {self.num_with_cls} of '
                             f'{self.count} images; Top-k metrics need it for all')

    def top1_loc_curve(self) -> np.ndarray:
        self._need_cls()
        return self.top1_loc_hits * 100.0 / self.count

    def top5_loc_curve(self) -> np.ndarray:
        self._need_cls()
        return self.top5_loc_hits * 100.0 / self.count

    def top1_loc(self, tau_index: Optional[int] = None) -> float:
        """Top-1 Loc at ``tau_index`` (MoANA: fixed 4); None = the GT-known Loc tau."""
        index = self.best_tau_index(50) if tau_index is None else int(tau_index)
        return float(self.top1_loc_curve()[index])

    def top5_loc(self) -> Tuple[float, int]:
        """(Top-5 Loc at the tau maximising it, that tau's index)."""
        curve = self.top5_loc_curve()
        index = int(np.argmax(curve))
        return float(curve[index]), index

    def top1_cls(self) -> float:
        self._need_cls()
        return self.top1_cls_hits * 100.0 / self.count

    def top5_cls(self) -> float:
        self._need_cls()
        return self.top5_cls_hits * 100.0 / self.count


def pxap_bin_edges(thresholds: Sequence[float]) -> np.ndarray:
    """Histogram edges ``[tau_0, ..., tau_{T-1}, 1, 2, 3]`` (T + 2 bins)."""
    return np.append(np.asarray(thresholds, dtype=np.float64), [1.0, 2.0, 3.0])


def score_histograms(scoremap, fg_mask, ignore_mask=None, thresholds=None,
                     edges=None) -> Tuple[np.ndarray, np.ndarray]:
    """(positive, negative) score histograms of one image over :func:`pxap_bin_edges`.

    Positives: pixels of ``fg_mask``; negatives: the others outside ``ignore_mask``.
    """
    if edges is None:
        edges = pxap_bin_edges(thresholds)
    scoremap = check_scoremap(scoremap)
    fg = np.asarray(fg_mask, dtype=bool)
    if fg.shape != scoremap.shape:
        raise ValueError(f'mask shape {fg.shape} differs from the score map {scoremap.shape}')
    neg = ~fg
    if ignore_mask is not None:
        ignore = np.asarray(ignore_mask, dtype=bool)
        if ignore.shape != scoremap.shape:
            raise ValueError(f'ignore mask shape {ignore.shape} differs from the score map '
                             f'{scoremap.shape}')
        neg &= ~ignore
    pos_hist = np.histogram(scoremap[fg], bins=edges)[0].astype(np.int64)
    neg_hist = np.histogram(scoremap[neg], bins=edges)[0].astype(np.int64)
    return pos_hist, neg_hist


class PxAPAccumulator:
    """Pixel average precision over images (see the module docstring for the formula)."""

    def __init__(self, thresholds: Sequence[float]):
        self.edges = pxap_bin_edges(thresholds)
        self.pos_hist = np.zeros(self.edges.size - 1, dtype=np.int64)
        self.neg_hist = np.zeros(self.edges.size - 1, dtype=np.int64)
        self.count = 0

    def update(self, scoremap, gt_mask, ignore_mask=None) -> None:
        """Add one image: score map, GT foreground mask, optional ignore mask (same shape)."""
        pos, neg = score_histograms(scoremap, gt_mask, ignore_mask, edges=self.edges)
        self.add_histograms(pos, neg)

    def add_histograms(self, pos_hist, neg_hist) -> None:
        self.pos_hist += np.asarray(pos_hist, dtype=np.int64)
        self.neg_hist += np.asarray(neg_hist, dtype=np.int64)
        self.count += 1

    def curve(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(precision, recall, valid) from the highest bin down; ``valid`` = TP + FP > 0."""
        tp = np.cumsum(self.pos_hist[::-1]).astype(np.float64)
        fp = np.cumsum(self.neg_hist[::-1]).astype(np.float64)
        positives = float(self.pos_hist.sum())
        if positives <= 0:
            raise ValueError('PxAP: no ground-truth foreground pixel in the evaluated images')
        valid = (tp + fp) > 0
        precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=valid)
        return precision, tp / positives, valid

    def compute(self) -> float:
        """PxAP in percent."""
        precision, recall, valid = self.curve()
        terms = precision[1:] * np.diff(recall)
        return float(terms[valid[1:]].sum() * 100.0)
