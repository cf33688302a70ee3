"""Classification metrics: average precision, mAP, and mmengine metrics for multi-label
classifiers (:class:`MultiLabelMAP`) and single-label ones (:class:`SingleLabelAccuracy`).

Average precision of one class, scores ``s_i`` and targets ``y_i`` (``y > 0`` positive,
``y = 0`` negative, ``y < 0`` ignored, e.g. VOC "difficult"): rank by descending score and
average the precision at the rank of each positive::

    AP = (1 / P) * sum_{i : y_i = 1} precision@rank(i),
    precision@r = #positives among the first r / r

Ties: items with equal scores form one block and are ranked together, so every positive in a
block gets ``precision = #positives up to the end of the block / #items up to the end of the
block``. The result does not depend on input order and equals scikit-learn's
``average_precision_score`` (step-wise ``sum_n (R_n - R_{n-1}) P_n`` over distinct thresholds).

``mAP`` is the NaN-mean of the per-class AP over classes with at least one positive (the
others get NaN and are skipped). All figures are fractions in [0, 1].
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
from mmengine.evaluator import BaseMetric

from ..registry import METRICS

__all__ = ['average_precision', 'mean_average_precision', 'MultiLabelMAP', 'SingleLabelAccuracy']


def average_precision(scores, targets) -> float:
    """AP of one class (see the module docstring); NaN if there is no positive."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    targets = np.asarray(targets, dtype=np.float64).reshape(-1)
    if scores.shape != targets.shape:
        raise ValueError(f'scores {scores.shape} and targets {targets.shape} differ in length')
    if np.isnan(scores).any():
        raise ValueError('scores contain NaN')
    keep = targets >= 0
    scores, positive = scores[keep], targets[keep] > 0
    num_pos = int(positive.sum())
    if num_pos == 0:
        return float('nan')
    order = np.argsort(-scores, kind='stable')
    s, tp = scores[order], np.cumsum(positive[order])
    block_end = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    tp_end = tp[block_end]
    pos_in_block = np.diff(np.r_[0, tp_end])
    return float(np.sum(pos_in_block * tp_end / (block_end + 1)) / num_pos)


def mean_average_precision(scores, targets) -> Tuple[float, np.ndarray]:
    """``(mAP, per-class AP (C,))`` for ``scores`` / ``targets`` of shape (N, C).

    Classes with no positive get AP = NaN and are left out of the mean (mAP is NaN if all are).
    """
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if scores.ndim != 2 or scores.shape != targets.shape:
        raise ValueError(f'scores and targets must both be (N, C); got {scores.shape}, '
                         f'{targets.shape}')
    ap = np.array([average_precision(scores[:, c], targets[:, c])
                   for c in range(scores.shape[1])])
    valid = ap[~np.isnan(ap)]
    return (float(valid.mean()) if valid.size else float('nan')), ap


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, 'detach'):
        x = x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=np.float32)


def _get(sample: Any, key: str):
    if isinstance(sample, dict):
        return sample.get(key)
    return getattr(sample, key, None)


@METRICS.register_module()
class MultiLabelMAP(BaseMetric):
    """mmengine metric for multi-label classifiers: mAP, exact match and label accuracy.

    ``process`` takes ``data_samples`` = the model's predict output, a list of dicts with
    ``'scores'`` (C,) sigmoid scores and ``'labels'`` (C,) multi-hot targets. A sample without
    ``'labels'`` falls back to row ``i`` of ``data_batch['labels']`` (B, C).

    * ``mAP``: :func:`mean_average_precision` over all processed images.
    * ``exact_match``: fraction of images with ``(score >= thr) == (label > 0)`` for every
      class (entries with label < 0 are ignored).
    * ``label_acc``: the same comparison averaged over all (image, class) entries.

    Keys are prefixed ``cls/`` by default (``cls/mAP``, ...).
    """

    default_prefix: Optional[str] = 'cls'

    def __init__(self, thr: float = 0.5, collect_device: str = 'cpu',
                 prefix: Optional[str] = None, collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        self.thr = float(thr)

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        batch_labels = None
        if isinstance(data_batch, dict) and data_batch.get('labels') is not None:
            batch_labels = _to_numpy(data_batch['labels'])
        for i, sample in enumerate(data_samples):
            scores = _get(sample, 'scores')
            labels = _get(sample, 'labels')
            if labels is None:
                if batch_labels is None:
                    raise KeyError("MultiLabelMAP needs 'labels' in each prediction or in "
                                   'data_batch')
                labels = batch_labels[i]
            if scores is None:
                raise KeyError("MultiLabelMAP needs 'scores' in each prediction")
            self.results.append({'scores': _to_numpy(scores).reshape(-1),
                                 'labels': _to_numpy(labels).reshape(-1)})

    def compute_metrics(self, results: list) -> Dict[str, float]:
        return self.summarise(results)[0]

    def summarise(self, results: list) -> Tuple[Dict[str, float], np.ndarray]:
        """``(compute_metrics' dict, per-class AP (C,))`` from one pass over ``results``."""
        scores = np.stack([r['scores'] for r in results])
        labels = np.stack([r['labels'] for r in results])
        mean_ap, per_class = mean_average_precision(scores, labels)
        care = labels >= 0
        hit = ((scores >= self.thr) == (labels > 0)) | ~care
        return {'mAP': mean_ap,
                'exact_match': float(hit.all(1).mean()),
                'label_acc': float(hit[care].mean()) if care.any() else float('nan')}, per_class


@METRICS.register_module()
class SingleLabelAccuracy(BaseMetric):
    """mmengine metric for single-label classifiers (one class per image): top-k accuracy.

    ``process`` takes the model's predict output, dicts with ``'scores'`` (C,) and
    ``'labels'`` (C,) one-hot targets; the true class is ``argmax(labels)``.

    * ``top1``: fraction of images whose highest score is the true class
      (``argmax(scores) == y``; a tie is broken towards the lower class index);
    * ``top5``: fraction whose true class scores higher than all but at most 4 classes
      (``#{c : s_c > s_y} < 5``), when there are more than 5 classes.

    Keys are prefixed ``cls/`` by default (``cls/top1``, ``cls/top5``).
    """

    default_prefix: Optional[str] = 'cls'

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        for sample in data_samples:
            scores, labels = _get(sample, 'scores'), _get(sample, 'labels')
            if scores is None or labels is None:
                raise KeyError("SingleLabelAccuracy needs 'scores' and 'labels' in each "
                               'prediction')
            self.results.append({'scores': _to_numpy(scores).reshape(-1),
                                 'label': int(np.argmax(_to_numpy(labels).reshape(-1)))})

    def compute_metrics(self, results: list) -> Dict[str, float]:
        scores = np.stack([r['scores'] for r in results])
        truth = np.array([r['label'] for r in results])
        true_score = scores[np.arange(len(truth)), truth]
        above = (scores > true_score[:, None]).sum(1)
        out = {'top1': float((scores.argmax(1) == truth).mean())}
        if scores.shape[1] > 5:
            out['top5'] = float((above < 5).mean())
        return out
