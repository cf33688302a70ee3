"""Evaluation: confusion-matrix mIoU (three named conventions), CAM threshold sweep,
pseudo-label quality, mAP.

The numpy-only parts import eagerly; the classification metric (which needs mmengine and
torch) is loaded on first access.
"""
from .cam_labels import cam_max_argmax, cam_to_label, resize_cams
from .confusion import (PRED_IGNORE_MODES, ConfusionMatrix, confusion_matrix,
                        iou_from_confusion, nanmean_or_nan)
from .label_quality import LabelQuality
from .miou_conventions import (DEFAULT_MIOU_CONVENTION, MIOU_CONVENTIONS, frequency_weighted_iou,
                               mean_iou, miou_by_convention)
from .threshold_sweep import DEFAULT_THRESHOLDS, FINE_THRESHOLDS, ThresholdSweep

_LAZY = {'average_precision', 'mean_average_precision', 'MultiLabelMAP'}

__all__ = ['cam_to_label', 'cam_max_argmax', 'resize_cams', 'confusion_matrix',
           'iou_from_confusion', 'nanmean_or_nan', 'ConfusionMatrix', 'PRED_IGNORE_MODES',
           'LabelQuality', 'ThresholdSweep', 'DEFAULT_THRESHOLDS', 'FINE_THRESHOLDS',
           'MIOU_CONVENTIONS', 'DEFAULT_MIOU_CONVENTION', 'mean_iou', 'miou_by_convention',
           'frequency_weighted_iou',
           *sorted(_LAZY)]


def __getattr__(name):
    if name in _LAZY:
        from . import classification
        return getattr(classification, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
