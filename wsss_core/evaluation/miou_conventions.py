"""The three mIoU conventions of the reference code bases, and frequency-weighted IoU.

All start from one confusion matrix ``C[g, p]`` over the pixels whose ground truth lies in
``[0, n)`` (:mod:`.confusion`; VOC's 255 is skipped). With ``R_k = sum_j C_kj`` (ground-truth
pixels of class k), ``P_k = sum_i C_ik`` (predicted pixels of k) and
``IoU_k = C_kk / (R_k + P_k - C_kk)``:

``union`` (the project default; GETAM's ``Evaluator``, irn / chainercv's ``eval_sem_seg``
used by MoANA's WSSS route)::

    mIoU = mean of IoU_k over the classes with R_k + P_k > 0

    A class only predicted counts (with IoU 0); a class absent from both does not.

``gt_present`` (deeplab-pytorch's ``scores()``, the DeepLab stage of OAA, NSROM, EDAM and
MoANA)::

    mIoU = mean of IoU_k over the classes with R_k > 0

    A class only predicted does not count; nor does a class absent from both.

``all_classes`` (psa-style ``eval.py`` of SEAM and EDAM, in float64)::

    IoU'_k = C_kk / (R_k + P_k - C_kk + 1e-10)
    mIoU   = (1 / n) * sum_k IoU'_k

    Every class counts; a class absent from both counts as 0.

Frequency-weighted IoU (deeplab-pytorch's and GETAM's ``FWIoU``)::

    FW IoU = sum over k with R_k > 0 of (R_k / sum_j R_j) * IoU_k

``union`` and ``gt_present`` are NaN when no class qualifies, FW IoU when no pixel was
counted; ``all_classes`` is then 0, as psa's formula gives. On a split where every class
occurs in the ground truth (full VOC val) the three means agree (``all_classes`` up to the
1e-10 of its denominators); they differ on subsets, on COCO and on small synthetic splits.

Predicted 255: :mod:`.confusion` reads it as background (or skips the pixel); psa's
``eval.py`` counts such a pixel in ``R_g`` of its ground-truth class and in no ``P_k``.
That only matters for pseudo labels with unlabelled pixels, and is independent of the mean.
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import numpy as np

__all__ = ['MIOU_CONVENTIONS', 'DEFAULT_MIOU_CONVENTION', 'CONVENTION_RULES',
           'check_convention', 'mean_iou', 'miou_by_convention', 'frequency_weighted_iou',
           'convention_metrics', 'convention_label']

MIOU_CONVENTIONS = ('union', 'gt_present', 'all_classes')
DEFAULT_MIOU_CONVENTION = 'union'
ALL_CLASSES_EPS = 1e-10

CONVENTION_RULES = {
    'union': 'nan-mean of IoU over the classes present in ground truth or prediction',
    'gt_present': 'nan-mean of IoU over the classes present in the ground truth '
                  '(deeplab-pytorch)',
    'all_classes': 'plain mean over all classes of TP / (T + P - TP + 1e-10), an absent '
                   'class counting 0 (psa-style eval.py)',
}


def check_convention(name: Optional[str]) -> str:
    """``name`` if it is a known convention (``None`` -> the default); else ValueError."""
    if name is None:
        return DEFAULT_MIOU_CONVENTION
    if name not in MIOU_CONVENTIONS:
        raise ValueError(f'unknown mIoU convention {name!r}; one of {MIOU_CONVENTIONS}')
    return name


def _parts(conf):
    conf = np.asarray(conf, dtype=np.float64)
    if conf.ndim != 2 or conf.shape[0] != conf.shape[1]:
        raise ValueError(f'confusion matrix must be square, got shape {conf.shape}')
    diag = np.diag(conf)
    return diag, conf.sum(1), conf.sum(0)


def _mean_over(values: np.ndarray, mask: np.ndarray) -> float:
    return float(values[mask].mean()) if mask.any() else float('nan')


def mean_iou(conf, convention: str = DEFAULT_MIOU_CONVENTION) -> float:
    """The mIoU of ``conf`` (``C[gt, pred]``) under ``convention`` (module docstring)."""
    convention = check_convention(convention)
    diag, rows, cols = _parts(conf)
    union = rows + cols - diag
    if convention == 'all_classes':
        return float(np.mean(diag / (union + ALL_CLASSES_EPS))) if diag.size else float('nan')
    keep = union > 0 if convention == 'union' else rows > 0
    iou = np.divide(diag, union, out=np.zeros_like(diag), where=union > 0)
    return _mean_over(iou, keep)


def miou_by_convention(conf) -> Dict[str, float]:
    """``{convention: mIoU}`` for every convention, in :data:`MIOU_CONVENTIONS` order."""
    return {name: mean_iou(conf, name) for name in MIOU_CONVENTIONS}


def frequency_weighted_iou(conf) -> float:
    """``sum_{k: R_k > 0} (R_k / sum R) IoU_k``; NaN if no pixel was counted."""
    diag, rows, cols = _parts(conf)
    total = rows.sum()
    if total <= 0:
        return float('nan')
    present = rows > 0
    iou = diag[present] / (rows[present] + cols[present] - diag[present])
    return float(np.sum(rows[present] / total * iou))


def _json(x: float) -> Optional[float]:
    return None if math.isnan(x) else float(x)


def convention_metrics(conf, convention: str = DEFAULT_MIOU_CONVENTION) -> Dict:
    """JSON-ready: ``miou`` (of ``convention``), ``miou_convention``, ``miou_by_convention``
    and ``fw_iou`` (NaN -> None)."""
    convention = check_convention(convention)
    by = miou_by_convention(conf)
    return {'miou': _json(by[convention]), 'miou_convention': convention,
            'miou_by_convention': {k: _json(v) for k, v in by.items()},
            'fw_iou': _json(frequency_weighted_iou(conf))}


def convention_label(convention: Optional[str]) -> str:
    """``'mIoU [name]'``, or plain ``'mIoU'`` when the convention is unknown (old records)."""
    return f'mIoU [{convention}]' if convention in MIOU_CONVENTIONS else 'mIoU'
