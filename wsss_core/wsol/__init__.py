"""Weakly supervised object localisation, one package: the wsolevaluation protocol and
MoANA's variant, the data layout, the stage.

What this package imports eagerly is numpy / OpenCV only: ``normalize`` (score maps), ``boxes``
(boxes from score maps, IoU, rescaling), ``metrics`` (BoxAccumulator, PxAPAccumulator),
``modes`` (the registry of evaluation modes: 'standard', plugins' such as 'moana-compat'), ``evaluator`` (per-image records and
summaries).  The mmengine metric ``WSOLMetric`` (``metric``, needs torch) is loaded on first
access.  The registered components live in their own modules, imported by the core's component
table: ``metadata`` (DATASETS ``WSOLMetadata``, ``export_wsol_metadata``), ``synthetic``
(DATASETS ``SyntheticShapesWSOL``), ``metric`` (METRICS ``WSOLMetric``) and ``evaluate_wsol``
(STAGES ``EvaluateWSOL``).
"""
from .boxes import (best_iou_per_threshold, box_iou_inclusive, boxes_from_contours,
                    boxes_from_scoremap, cam_thresholds, rescale_boxes, threshold_contours)
from .evaluator import WSOLEvaluator
from .metrics import BoxAccumulator, PxAPAccumulator, tau_index
from .modes import MODES, WSOLMode, get_mode, register_wsol_mode
from .normalize import minmax_normalize, percentile_normalize

__all__ = ['best_iou_per_threshold', 'box_iou_inclusive', 'boxes_from_contours',
           'boxes_from_scoremap', 'cam_thresholds', 'rescale_boxes', 'threshold_contours',
           'WSOLEvaluator', 'BoxAccumulator', 'PxAPAccumulator', 'tau_index', 'MODES',
           'WSOLMode', 'get_mode', 'register_wsol_mode', 'minmax_normalize',
           'percentile_normalize', 'WSOLMetric']


def __getattr__(name):
    if name == 'WSOLMetric':
        from .metric import WSOLMetric
        return WSOLMetric
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
