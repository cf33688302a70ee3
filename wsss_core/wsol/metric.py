"""WSOLMetric: the WSOL protocol as an mmengine metric (METRICS registry).

``process`` takes, per sample, a dict (or an object with these attributes):

* ``cam`` (h, w): the raw CAM of the ground-truth class (resized and normalised here), or
  ``scoremap`` (S, S): an already normalised map on the evaluation square;
* ``gt_boxes`` (N, 4): ``x0, y0, x1, y1`` in original image pixels, with ``ori_size``
  ``(w, h)`` of that image (default: the CAM's own size);
* optional ``gt_mask`` / ``ignore_mask`` (any size; resized with nearest neighbour);
* optional ``scores`` (C,) class scores and ``gt_label`` (int) for Top-k Loc / Cls.

Only small per-image records are kept (so ``collect_results`` across ranks is cheap);
``compute_metrics`` returns the metrics of the mode (see :mod:`.modes`), e.g.
``MaxBoxAccV2``, ``MaxBoxAcc@50``, ``GT-known Loc``, ``Top-1 Loc``, ``Top-5 Loc``,
``Top-1 Cls``, ``PxAP``, all in percent.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from ..registry import METRICS
from .evaluator import WSOLEvaluator


def _get(sample: Any, key: str):
    if isinstance(sample, dict):
        return sample.get(key)
    return getattr(sample, key, None)


def _numpy(x):
    if x is None:
        return None
    if hasattr(x, 'detach'):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


@METRICS.register_module()
class WSOLMetric(BaseMetric):
    """Box accuracy (MaxBoxAcc, MaxBoxAccV2), GT-known / Top-k Loc, Top-k Cls and PxAP.

    Args:
        mode: ``'standard'`` (wsolevaluation) or ``'moana-compat'`` (registered by the MoANA
            plugin).
        image_size: side of the evaluation square (224).
        cam_curve_interval / iou_thresholds: override the mode's (0.01; 30, 50, 70).
    """

    default_prefix: Optional[str] = 'wsol'

    def __init__(self, mode: str = 'standard', image_size: int = 224,
                 cam_curve_interval: Optional[float] = None,
                 iou_thresholds: Optional[Sequence[int]] = None, collect_device: str = 'cpu',
                 prefix: Optional[str] = None, collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        self.evaluator = WSOLEvaluator(mode, image_size, cam_curve_interval, iou_thresholds)

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        for sample in data_samples:
            self.results.append(self.sample_record(sample))

    def sample_record(self, sample: Any) -> dict:
        """The record of one sample dict (see the module docstring)."""
        ev = self.evaluator
        boxes = _numpy(_get(sample, 'gt_boxes'))
        if boxes is None:
            raise KeyError("WSOLMetric needs 'gt_boxes' in every sample")
        label = _get(sample, 'gt_label')
        label = None if label is None else int(_numpy(label).reshape(-1)[0])
        scores = _numpy(_get(sample, 'scores'))
        gt_mask, ignore = _numpy(_get(sample, 'gt_mask')), _numpy(_get(sample, 'ignore_mask'))
        ori_size = _get(sample, 'ori_size')
        scoremap = _get(sample, 'scoremap')
        if scoremap is not None:
            scoremap = _numpy(scoremap).astype(np.float32)
            if ori_size is None:
                ori_size = (scoremap.shape[1], scoremap.shape[0])
            fg, ign = ev.masks(gt_mask, ignore) if gt_mask is not None else (None, None)
            return ev.record(scoremap, ev.gt_boxes(boxes, ori_size), scores, label, fg, ign)
        cam = _numpy(_get(sample, 'cam'))
        if cam is None:
            raise KeyError("WSOLMetric needs 'cam' (raw CAM) or 'scoremap' in every sample")
        ori = None if ori_size is None else tuple(int(v) for v in np.asarray(ori_size))
        return ev.evaluate(cam, boxes, ori, scores, label, gt_mask, ignore)[1]

    def compute_metrics(self, results: list) -> Dict[str, float]:
        return self.evaluator.summarize(results)[0]
