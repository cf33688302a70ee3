"""Pseudo-label quality: coverage, precision, recall (overall and per class), mIoU.

Pseudo labels use 0 = background, 1..C = classes and 255 = ignore (unlabelled). Only
pixels whose ground truth ``g`` is valid (``0 <= g < n``, so not 255) are counted. Let

* ``V``  = valid pixels,
* ``L``  = valid pixels that the pseudo label labels (``p != 255``),
* ``K``  = pixels of ``L`` with ``p = g`` (correct).

Then::

    labelled_fraction = |L| / |V|
    precision         = |K| / |L|        (how right the labels that were given are)
    recall            = |K| / |V|        (how much of the image is labelled correctly)
                      = precision * labelled_fraction

Per class ``c`` (background included, ``c = 0``)::

    precision_c = |p = c and g = c| / |p = c|          (over valid pixels)
    recall_c    = |p = c and g = c| / |g = c|          (ignored pixels count as missed)

``mean_fg_precision`` / ``mean_fg_recall`` are NaN-means over the foreground classes
``c >= 1``. Two mIoUs are also reported, both under ``convention`` (:mod:`.miou_conventions`,
default ``union``, named in ``miou_convention``): ``miou`` counts an ignored pixel as
background (the usual convention for scoring a pseudo label, :mod:`.confusion`),
``miou_labelled`` leaves ignored pixels out. Internally everything comes from one
``(n, n + 1)`` matrix ``Q[g, p]``, the last column holding ignored predictions.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

from .confusion import _class_names, _json_float, nanmean_or_nan
from .miou_conventions import check_convention, mean_iou

__all__ = ['LabelQuality']


def _ratio(num, den):
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


class LabelQuality:
    """Accumulates ``Q[g, p]`` (``p = n`` for ignored) over images; see module docstring."""

    def __init__(self, num_classes: int, ignore_index: int = 255):
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = np.zeros((self.num_classes, self.num_classes + 1), dtype=np.int64)
        self.num_images = 0

    def update(self, pseudo: np.ndarray, gt: np.ndarray) -> None:
        """Add one image: ``pseudo`` (H, W) with 255 = ignore, ``gt`` (H, W)."""
        n = self.num_classes
        pseudo, gt = np.asarray(pseudo), np.asarray(gt)
        if pseudo.shape != gt.shape:
            raise ValueError(f'pseudo label and gt shapes differ: {pseudo.shape} vs {gt.shape}')
        p = pseudo.reshape(-1).astype(np.int64)
        g = gt.reshape(-1).astype(np.int64)
        keep = (g >= 0) & (g < n)
        p, g = p[keep], g[keep]
        ignored = p == self.ignore_index
        bad_mask = ((p < 0) | (p >= n)) & ~ignored
        if bad_mask.any():
            bad = np.unique(p[bad_mask])
            raise ValueError(f'pseudo-label value(s) {bad.tolist()[:10]} outside 0..{n - 1} '
                             f'(and {self.ignore_index} = ignore)')
        p = np.where(ignored, n, p)
        self.matrix += np.bincount(g * (n + 1) + p,
                                   minlength=n * (n + 1)).reshape(n, n + 1)
        self.num_images += 1

    def merge(self, other: 'LabelQuality') -> 'LabelQuality':
        if other.num_classes != self.num_classes:
            raise ValueError('cannot merge label-quality counts of different class numbers')
        self.matrix += other.matrix
        self.num_images += other.num_images
        return self

    # ------------------------------------------------------------------ metrics
    def counts(self) -> Dict[str, int]:
        q = self.matrix
        labelled = q[:, :-1]
        return {'valid': int(q.sum()), 'labelled': int(labelled.sum()),
                'correct': int(np.trace(labelled))}

    def precision_recall(self):
        """``(labelled_fraction, precision, recall)`` as floats (NaN when undefined)."""
        c = self.counts()
        return (float(_ratio(c['labelled'], c['valid'])), float(_ratio(c['correct'], c['labelled'])),
                float(_ratio(c['correct'], c['valid'])))

    def class_precision(self) -> np.ndarray:
        diag = np.diag(self.matrix[:, :-1])
        return _ratio(diag, self.matrix[:, :-1].sum(0))

    def class_recall(self) -> np.ndarray:
        diag = np.diag(self.matrix[:, :-1])
        return _ratio(diag, self.matrix.sum(1))

    def confusion(self, pred_ignore: str = 'background') -> np.ndarray:
        """``(n, n)`` confusion with ignored pixels as background or left out (``'skip'``)."""
        conf = self.matrix[:, :-1].copy()
        if pred_ignore == 'background':
            conf[:, 0] += self.matrix[:, -1]
        elif pred_ignore != 'skip':
            raise ValueError(f"pred_ignore must be 'background' or 'skip', got {pred_ignore!r}")
        return conf

    def error_split(self) -> Dict[str, float]:
        """Where the labels go wrong, as fractions of the ground truth's object pixels
        ``O = {g >= 1}`` or background pixels ``B = {g = 0}``::

            object_to_background = |O and p = 0| / |O|
            object_unlabelled    = |O and p = ignore| / |O|
            object_wrong_class   = |O and p >= 1 and p != g| / |O|
            background_to_object = |B and p >= 1| / |B|
            object_area_ratio    = |p >= 1| / |O|   (labelled object area over true object area)

        A label that misses object parts raises the first; one that spills onto the
        background the fourth; ``object_area_ratio`` below 1 means objects labelled smaller
        than they are.  NaN where the denominator is empty.
        """
        q = self.matrix
        n = self.num_classes
        obj, bg = q[1:], q[0]
        fg_pred = q[:, 1:n]
        wrong = obj[:, 1:n].sum() - np.trace(obj[:, 1:n])
        split = dict(object_to_background=_ratio(obj[:, 0].sum(), obj.sum()),
                     object_unlabelled=_ratio(obj[:, n].sum(), obj.sum()),
                     object_wrong_class=_ratio(wrong, obj.sum()),
                     background_to_object=_ratio(bg[1:n].sum(), bg.sum()),
                     object_area_ratio=_ratio(fg_pred.sum(), obj.sum()))
        return {k: float(v) for k, v in split.items()}

    def summary(self, class_names: Optional[Sequence[str]] = None,
                convention: Optional[str] = None) -> Dict:
        """JSON-ready dict of every figure in the module docstring (NaN -> None); the two
        mIoUs under ``convention`` (default ``union``)."""
        convention = check_convention(convention)
        names = _class_names(class_names, self.num_classes)
        frac, prec, rec = self.precision_recall()
        cp, cr = self.class_precision(), self.class_recall()
        return {
            'labelled_fraction': _json_float(frac),
            'precision': _json_float(prec),
            'recall': _json_float(rec),
            'miou': _json_float(mean_iou(self.confusion('background'), convention)),
            'miou_labelled': _json_float(mean_iou(self.confusion('skip'), convention)),
            'miou_convention': convention,
            'mean_fg_precision': _json_float(nanmean_or_nan(cp[1:])),
            'mean_fg_recall': _json_float(nanmean_or_nan(cr[1:])),
            'per_class': {name: {'precision': _json_float(p), 'recall': _json_float(r)}
                          for name, p, r in zip(names, cp, cr)},
            'counts': self.counts(),
            'num_images': int(self.num_images),
        }
