"""WSOLEvaluator: one image's CAM to a per-image record, records to the metrics of a mode.

Per image (``docs/wsol_evaluation.md#protocol-per-image``): the CAM of the ground-truth class
is resized to ``image_size`` x ``image_size`` (bicubic) and normalised by the mode; GT boxes
are rescaled from the original image size with truncation; GT / ignore masks are resized with
nearest neighbour (OpenCV ``INTER_NEAREST``, as the reference) and the ignore region loses
the foreground.  The
contours are found once per tau and give both the largest-contour and the all-contour boxes.

A record is a small dict of numpy arrays (best IoU per tau, class correctness, PxAP
histograms), so records can be gathered across processes or stored for resuming, and
:meth:`WSOLEvaluator.summarize` turns any list of them into the metrics.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .boxes import (best_iou_per_threshold, boxes_from_contours, cam_thresholds,
                    check_scoremap, rescale_boxes, threshold_contours)
from .metrics import BoxAccumulator, PxAPAccumulator, pxap_bin_edges, score_histograms, tau_index
from .modes import WSOLMode, get_mode
from .normalize import minmax_normalize, percentile_normalize

RECORD_KEYS = ('has_boxes', 'ious_largest', 'ious_multi', 'has_cls', 'top1', 'top5',
               'has_mask', 'pxap_pos', 'pxap_neg')


def top_k_correct(scores, gt_label: int, k: int) -> bool:
    """Whether ``gt_label`` is among the k highest ``scores`` (ties: lower index first)."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not 0 <= int(gt_label) < scores.size:
        raise ValueError(f'label {gt_label} outside 0..{scores.size - 1}')
    top = np.argsort(-scores, kind='stable')[:min(int(k), scores.size)]
    return bool(int(gt_label) in top.tolist())


class WSOLEvaluator:
    """Turns raw CAMs into score maps and per-image records, and records into metrics.

    Args:
        mode: a registered mode name (``'standard'``; ``'moana-compat'`` with the MoANA plugin)
            or a :class:`~.modes.WSOLMode`.
        image_size: side of the square the score map and the GT live on (224).
        cam_curve_interval / iou_thresholds: override the mode's.
    """

    def __init__(self, mode='standard', image_size: int = 224,
                 cam_curve_interval: Optional[float] = None,
                 iou_thresholds: Optional[Sequence[int]] = None):
        self.mode: WSOLMode = get_mode(mode, cam_curve_interval=cam_curve_interval,
                                       iou_thresholds=iou_thresholds)
        self.image_size = int(image_size)
        self.thresholds = cam_thresholds(self.mode.cam_curve_interval)
        self.edges = pxap_bin_edges(self.thresholds)
        self.top1_tau_index = (None if self.mode.top1_loc_tau is None
                               else tau_index(self.thresholds, self.mode.top1_loc_tau))

    # ------------------------------------------------------------------ per image
    @property
    def size(self) -> Tuple[int, int]:
        return self.image_size, self.image_size

    def scoremap(self, cam) -> np.ndarray:
        """Raw CAM (h, w) -> bicubic resize to the square -> the mode's normalisation."""
        cam = np.asarray(cam, dtype=np.float32)
        if cam.ndim != 2:
            raise ValueError(f'a CAM must be 2-D (h, w), got shape {cam.shape}')
        if cam.shape != self.size:
            cam = cv2.resize(cam, self.size, interpolation=cv2.INTER_CUBIC)
        if self.mode.normalization == 'percentile':
            return percentile_normalize(cam, self.mode.percentile)
        return minmax_normalize(cam)

    def gt_boxes(self, boxes, ori_size: Tuple[int, int]) -> np.ndarray:
        """GT boxes of an image of ``ori_size = (w, h)`` in the square's frame."""
        return rescale_boxes(boxes, ori_size, self.size)

    def masks(self, gt_mask, ignore_mask=None) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """(foreground, ignore) boolean masks on the square; ignore minus foreground."""
        fg = self._nearest(gt_mask)
        ignore = None if ignore_mask is None else self._nearest(ignore_mask) & ~fg
        return fg, ignore

    def _nearest(self, mask) -> np.ndarray:
        arr = np.asarray(mask)
        if arr.ndim != 2:
            raise ValueError(f'a mask must be 2-D, got shape {arr.shape}')
        arr = (arr > 0).astype(np.uint8)
        if arr.shape != self.size:
            arr = cv2.resize(arr, self.size, interpolation=cv2.INTER_NEAREST)
        return arr > 0

    def record(self, scoremap, gt_boxes=None, scores=None, gt_label: Optional[int] = None,
               gt_mask=None, ignore_mask=None) -> Dict[str, np.ndarray]:
        """The record of one image from its score map (on the square, in [0, 1]), its GT
        boxes in the square's frame (None: a masks-only data set such as OpenImages),
        optional class scores + label and masks (on the square)."""
        scoremap = check_scoremap(scoremap)
        if gt_boxes is None and gt_mask is None:
            raise ValueError('an image needs GT boxes or a GT mask to be evaluated')
        num_t = self.thresholds.size
        rec = dict(has_boxes=np.bool_(gt_boxes is not None), ious_largest=np.zeros(num_t),
                   ious_multi=np.zeros(num_t if self.mode.report_v2 else 0))
        if gt_boxes is not None:
            height, width = scoremap.shape
            contours = threshold_contours(scoremap, self.thresholds)
            largest = [boxes_from_contours(c, width, height, False) for c in contours]
            rec['ious_largest'] = best_iou_per_threshold(largest, gt_boxes)
            if self.mode.report_v2:
                every = [boxes_from_contours(c, width, height, True) for c in contours]
                rec['ious_multi'] = best_iou_per_threshold(every, gt_boxes)
        has_cls = scores is not None and gt_label is not None
        rec['has_cls'] = np.bool_(has_cls)
        rec['top1'] = np.bool_(has_cls and top_k_correct(scores, gt_label, 1))
        rec['top5'] = np.bool_(has_cls and top_k_correct(scores, gt_label, 5))
        bins = self.edges.size - 1
        if gt_mask is not None:
            pos, neg = score_histograms(scoremap, gt_mask, ignore_mask, edges=self.edges)
        else:
            pos = neg = np.zeros(bins, dtype=np.int64)
        rec['has_mask'] = np.bool_(gt_mask is not None)
        rec['pxap_pos'], rec['pxap_neg'] = pos, neg
        return rec

    def evaluate(self, cam, gt_boxes=None, ori_size: Optional[Tuple[int, int]] = None, scores=None,
                 gt_label: Optional[int] = None, gt_mask=None,
                 ignore_mask=None) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
        """(score map, record) of one image from its raw CAM and original-size annotations.

        ``ori_size = (w, h)`` of the image the boxes refer to; default the CAM's own size.
        """
        cam = np.asarray(cam)
        if ori_size is None:
            ori_size = (cam.shape[1], cam.shape[0])
        scoremap = self.scoremap(cam)
        fg, ignore = self.masks(gt_mask, ignore_mask) if gt_mask is not None else (None, None)
        boxes = None if gt_boxes is None else self.gt_boxes(gt_boxes, ori_size)
        return scoremap, self.record(scoremap, boxes, scores, gt_label, fg, ignore)

    # ------------------------------------------------------------------ summary
    def accumulators(self, records: Sequence[dict]):
        """(largest-contour or None, all-contour or None, PxAP or None) over ``records``.

        Box accumulators exist when every record has boxes (none: a masks-only data set);
        the PxAP one when any record has a mask.
        """
        if not records:
            raise ValueError('no image was evaluated')
        with_boxes = sum(bool(r['has_boxes']) for r in records)
        if 0 < with_boxes < len(records):
            raise ValueError(f'{with_boxes} of {len(records)} images have GT boxes; box '
                             'metrics need them for every image')
        deltas = self.mode.iou_thresholds
        largest = multi = pxap = None
        if with_boxes:
            largest = BoxAccumulator(self.thresholds, deltas, multi_contour=False)
            if self.mode.report_v2:
                multi = BoxAccumulator(self.thresholds, deltas, multi_contour=True)
        if any(bool(r['has_mask']) for r in records):
            pxap = PxAPAccumulator(self.thresholds)
        for r in records:
            cls = (bool(r['top1']), bool(r['top5'])) if bool(r['has_cls']) else (None, None)
            if largest is not None:
                largest.add_ious(r['ious_largest'], *cls)
            if multi is not None:
                multi.add_ious(r['ious_multi'])
            if pxap is not None and bool(r['has_mask']):
                pxap.add_histograms(r['pxap_pos'], r['pxap_neg'])
        return largest, multi, pxap

    def summarize(self, records: Sequence[dict]) -> Tuple[Dict[str, float], dict]:
        """(metrics, detail): the metrics of the mode (see :mod:`.modes`) and the curves."""
        largest, multi, pxap = self.accumulators(records)
        metrics: Dict[str, float] = {}
        detail = dict(mode=dataclasses.asdict(self.mode), image_size=self.image_size,
                      num_images=len(records), thresholds=self.thresholds.tolist())
        if largest is not None:
            detail.update(self._box_metrics(metrics, largest, multi))
        if all(bool(r['has_cls']) for r in records):
            metrics['Top-1 Cls'] = 100.0 * float(np.mean([bool(r['top1']) for r in records]))
            metrics['Top-5 Cls'] = 100.0 * float(np.mean([bool(r['top5']) for r in records]))
        if pxap is not None:
            metrics['PxAP'] = pxap.compute()
            precision, recall, valid = pxap.curve()
            detail['pxap'] = dict(num_images=pxap.count, precision=precision.tolist(),
                                  recall=recall.tolist(), valid=valid.tolist())
        return metrics, detail

    def _box_metrics(self, metrics: dict, largest: BoxAccumulator,
                     multi: Optional[BoxAccumulator]) -> dict:
        """Fill the box metrics into ``metrics``; return the best taus and curves."""
        deltas = self.mode.iou_thresholds
        taus = self.thresholds
        best_tau: Dict[str, float] = {}
        curves: Dict[str, object] = {'largest_contour': {
            str(d): largest.box_acc(d).tolist() for d in deltas}}
        if multi is not None:
            for d in deltas:
                metrics[f'MaxBoxAccV2@{d}'] = multi.max_box_acc(d)
                best_tau[f'MaxBoxAccV2@{d}'] = multi.best_tau(d)
            metrics['MaxBoxAccV2'] = multi.max_box_acc_v2()
            curves['all_contours'] = {str(d): multi.box_acc(d).tolist() for d in deltas}
        for d in deltas:
            metrics[f'MaxBoxAcc@{d}'] = largest.max_box_acc(d)
            best_tau[f'MaxBoxAcc@{d}'] = largest.best_tau(d)
        metrics['MaxBoxAcc'] = (largest.max_box_acc_v2() if self.mode.maxboxacc_mean
                                else largest.max_box_acc(50))
        metrics['GT-known Loc'] = largest.gt_known_loc()
        if largest.has_cls:
            top1_index = (largest.best_tau_index(50) if self.top1_tau_index is None
                          else self.top1_tau_index)
            metrics['Top-1 Loc'] = largest.top1_loc(top1_index)
            metrics['Top-5 Loc'], top5_index = largest.top5_loc()
            best_tau['Top-1 Loc'] = float(taus[top1_index])
            best_tau['Top-5 Loc'] = float(taus[top5_index])
            curves['Top-1 Loc'] = largest.top1_loc_curve().tolist()
            curves['Top-5 Loc'] = largest.top5_loc_curve().tolist()
        return dict(best_tau=best_tau, box_acc_curves=curves)


def stack_records(records: Sequence[dict]) -> Dict[str, np.ndarray]:
    """Records -> one array per key (for an ``.npz``)."""
    return {k: np.stack([np.asarray(r[k]) for r in records]) for k in RECORD_KEYS}


def unstack_records(arrays) -> List[dict]:
    """Inverse of :func:`stack_records`."""
    n = len(arrays[RECORD_KEYS[0]])
    return [{k: arrays[k][i] for k in RECORD_KEYS} for i in range(n)]
