"""IRN's inter-pixel relation labels (``cam_to_ir_label``, Ahn, Cho & Kwak, CVPR 2019).

From normalised CAMs ``M_1..M_K`` of the image's classes and two background thresholds
``t_fg > t_bg`` (irn: 0.30 and 0.05)::

    i_t(x)    = argmax over [t, M_1(x), ..., M_K(x)]          (index 0 = background)
    c_t(x)    = argmax_l Q_t(l, x),  Q_t = labelCRF(img, i_t)  (K + 1 labels, gt_prob 0.7)
    fg_conf   = c_{t_fg} mapped to 0 / class_ids + 1;   bg_conf = the same with t_bg

    label(x)  = fg_conf(x)   if fg_conf(x) != 0              (confident foreground)
                0            if fg_conf(x) = bg_conf(x) = 0   (confident background)
                255          otherwise                         (unsure: ignored by the IRN loss)

The label CRF is :func:`~wsss_core.refiners.dense_crf.dense_crf_labels` with the ``'irn'``
preset (G(3, 3), B(50, 5, 10), 10 iterations).  ``crf=False`` skips it (``c_t = i_t``).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..evaluation.cam_labels import cam_max_argmax, resize_cams
from ..refiners.base import LabelRefiner
from ..refiners.dense_crf import crf_override_parameters, crf_params, dense_crf_labels
from ..registry import LABEL_REFINERS

__all__ = ['IRLabels', 'threshold_index']

IGNORE_INDEX = 255


def threshold_index(cams: np.ndarray, threshold: float) -> np.ndarray:
    """``argmax over [t, M_1, ..., M_K]`` as int64 ``(H, W)`` in ``0..K`` (first index wins a
    tie, so a pixel is foreground iff ``max_k M_k > t``)."""
    cams = np.asarray(cams)
    cmax, index = cam_max_argmax(cams, np.arange(cams.shape[0]))   # index = argmax + 1
    return np.where(cmax > float(threshold), index, 0)


@LABEL_REFINERS.register_module()
class IRLabels(LabelRefiner):
    """IRN training labels: confident foreground, confident background, 255 in between.

    Args:
        fg_threshold: background score for the foreground-confident map (irn 0.30).
        bg_threshold: background score for the background-confident map (irn 0.05).
        crf: refine each thresholded map with the label CRF (irn: yes).
        crf_preset: a :data:`~wsss_core.refiners.dense_crf.CRF_PRESETS` key with ``gt_prob``.
        **overrides: CRF parameter overrides, e.g. ``iterations=5``.
    """

    needs = ('img',)

    #: what ``**overrides`` takes: the CRFParams fields
    extra_parameters = staticmethod(crf_override_parameters)

    def __init__(self, fg_threshold: float = 0.30, bg_threshold: float = 0.05, crf: bool = True,
                 crf_preset: Optional[str] = 'irn', **overrides):
        if not float(bg_threshold) < float(fg_threshold):
            raise ValueError(f'bg_threshold ({bg_threshold}) must be below fg_threshold '
                             f'({fg_threshold}): the background map has to claim less foreground')
        self.fg_threshold, self.bg_threshold = float(fg_threshold), float(bg_threshold)
        self.crf = bool(crf)
        self.params = crf_params(crf_preset, **overrides)
        if self.crf and self.params.gt_prob is None:
            raise ValueError(f"the label CRF needs gt_prob and preset {crf_preset!r} has none: "
                             "use crf_preset='irn' or pass gt_prob=0.7")

    def confident_index(self, img: np.ndarray, cams: np.ndarray, threshold: float) -> np.ndarray:
        """``c_t``: the thresholded argmax index map, CRF-refined when ``crf`` is on."""
        index = threshold_index(cams, threshold)
        if not self.crf:
            return index
        q = dense_crf_labels(img, index, cams.shape[0] + 1, **self.params.label_kernels())
        return q.argmax(0)

    def refine(self, sample: dict) -> dict:
        img = sample['img']
        cams = np.asarray(sample['cams'], dtype=np.float32)
        class_ids = np.asarray(sample['class_ids'], dtype=np.int64).reshape(-1)
        if cams.ndim != 3 or cams.shape[0] != class_ids.size:
            raise ValueError(f"{sample.get('img_id')}: cams {cams.shape} do not match "
                             f'{class_ids.size} class ids')
        if class_ids.size == 0:   # no foreground class: everything is confident background
            sample['label'] = np.zeros(img.shape[:2], dtype=np.uint8)
            return sample
        if cams.shape[1:] != img.shape[:2]:
            cams = resize_cams(cams, img.shape[:2])
        values = np.concatenate([[0], class_ids + 1]).astype(np.uint8)
        fg_conf = values[self.confident_index(img, cams, self.fg_threshold)]
        bg_conf = values[self.confident_index(img, cams, self.bg_threshold)]
        label = fg_conf.copy()
        label[fg_conf == 0] = IGNORE_INDEX
        label[(fg_conf == 0) & (bg_conf == 0)] = 0
        sample['label'] = label
        return sample

    def __repr__(self) -> str:
        return (f'IRLabels(fg_threshold={self.fg_threshold}, bg_threshold={self.bg_threshold}, '
                f'crf={self.crf}, params={self.params})')
