"""NSROM's potential object mining, POM (``docs/methods/nsrom.md`` §3.6 step B, the reference's
``gen_label.py``).

After background extraction (OAA's proxy-label rule on the OA-CAMs, :class:`OAAProxyLabels`)
the label map L still calls "background" some pixels the *plain* classifier CAMs see as
object.  POM turns those into ignore, with one adaptive threshold per image-level class c:

    A_c   = (A_c - min) / (max - min + 1e-8)              plain CAM, min-max normalised
    t_c   = median{ A_c(p) : L(p) = c + 1 }               if those values sum to non-zero
          = median{ A_c(p) : A_c(p) > median(H_c) }      else, with H_c = { A_c > 0.3 } non-empty
          = 1.0                                           else (nothing above 0.3)
    hit   = OR_c [ A_c > t_c ]
    L(p)  = 255   where L(p) = 0 and hit(p)               mined background -> ignore
                                                          (never relabelled)
    L     = 255   everywhere if fewer than 1 % of the pixels are foreground (1..C)

Foreground and ignore pixels are never changed.  The medians are NumPy's (the mean of the
two middle values for an even count) over the selected values.  As in the reference, the
first case tests the *sum* of the selected values, not their count: a class that the label
map holds only where its CAM is 0 takes the fallback (after min-max every value is >= 0,
so the sum is non-zero exactly when some selected value is > 0).  In the fallback, when
more than half of H_c sit at the maximum, nothing lies above median(H_c): the reference
takes the median of nothing (NaN) and ``A > NaN`` is false everywhere, so the class mines
no pixel -- reproduced here without the NaN.  The reference writes "any class hit" as a
channel sum with the background channel at 0.5 tested against 0.6; that is this OR.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from wsss_core.io import IGNORE_INDEX
from wsss_core.refiners.base import LabelRefiner
from wsss_core.registry import LABEL_REFINERS
from wsss_oaa.proxy_labels import ignore_if_nearly_empty, minmax

__all__ = ['PotentialObjectMining', 'pom_threshold', 'potential_object_mining']


def pom_threshold(cam01: np.ndarray, inside: np.ndarray, fallback_thr: float = 0.3) -> float:
    """t_c of the module docstring for one normalised CAM; ``inside`` = (L == c + 1).

    Returns ``inf`` for "no pixel is hit" (the reference's NaN threshold).
    """
    selected = cam01[inside]
    if selected.sum() != 0:
        return float(np.median(selected))
    high = cam01[cam01 > fallback_thr]
    if high.size == 0:
        return 1.0
    above = cam01[cam01 > np.median(high)]
    return float(np.median(above)) if above.size else float('inf')


def potential_object_mining(label: np.ndarray, cams: np.ndarray, class_ids: Sequence[int],
                            fallback_thr: float = 0.3, min_fg_ratio: float = 0.01) -> np.ndarray:
    """The rule of the module docstring for one image.

    Args:
        label: L, uint8 (H, W): 0 background, class id + 1, 255 ignore (step A's result).
        cams: (K, H, W) plain CAMs of ``class_ids`` at the label's size (any scale).
        class_ids: K 0-based foreground class ids (label value = class id + 1).
        fallback_thr: 0.3, the "high" level of the missing-class fallback.
        min_fg_ratio: 0.01, below which the whole image is ignored.

    Returns:
        A new uint8 (H, W) label map.
    """
    label = np.asarray(label)
    cams = np.asarray(cams)
    ids = np.asarray(class_ids, dtype=np.int64).reshape(-1)
    if cams.ndim != 3 or cams.shape[0] != ids.size or cams.shape[1:] != label.shape:
        raise ValueError(f'cams {cams.shape} must be (K, H, W) with K = {ids.size} class ids '
                         f'and (H, W) = the label size {label.shape}')
    hit = np.zeros(label.shape, dtype=bool)
    for cam, cid in zip(cams, ids):
        a = minmax(cam)
        hit |= a > pom_threshold(a, label == cid + 1, fallback_thr)
    out = label.astype(np.uint8, copy=True)
    out[(out == 0) & hit] = IGNORE_INDEX
    return ignore_if_nearly_empty(out, min_fg_ratio)


@LABEL_REFINERS.register_module()
class PotentialObjectMining(LabelRefiner):
    """:func:`potential_object_mining` on ``sample['label']`` with the plain CAMs.

    Runs after a refiner that made the label (NSROM: :class:`OAAProxyLabels` on the OA-CAMs).
    The plain CAMs come from ``sample[cams_key]`` / ``sample[cams_key + '_class_ids']``,
    which ``RefineLabels(extra_cams={cams_key: '<plain CAM stage>'})`` provides.

    Args:
        cams_key: the extra-CAM sample key (default ``'plain_cams'``).
        fallback_thr, min_fg_ratio: the rule's constants (0.3, 0.01).
    """

    def __init__(self, cams_key: str = 'plain_cams', fallback_thr: float = 0.3,
                 min_fg_ratio: float = 0.01):
        self.cams_key = str(cams_key)
        self.params = dict(fallback_thr=float(fallback_thr), min_fg_ratio=float(min_fg_ratio))

    def refine(self, sample: dict) -> dict:
        img_id = sample.get('img_id')
        if sample.get('label') is None:
            raise ValueError(f'PotentialObjectMining refines a label map, but none was made for '
                             f'image {img_id}: put it after a label-making refiner (e.g. '
                             'OAAProxyLabels) in the chain')
        key = self.cams_key
        if sample.get(key) is None or sample.get(f'{key}_class_ids') is None:
            raise KeyError(f"PotentialObjectMining reads the plain CAMs from sample['{key}'], "
                           f'which image {img_id} lacks: set extra_cams=dict({key}=<the plain '
                           "CAM stage>) on the RefineLabels stage")
        try:
            sample['label'] = potential_object_mining(sample['label'], sample[key],
                                                      sample[f'{key}_class_ids'], **self.params)
        except ValueError as exc:
            raise ValueError(f'PotentialObjectMining on image {img_id}: {exc}') from exc
        return sample

    def __repr__(self) -> str:
        args = ', '.join(f'{k}={v}' for k, v in self.params.items())
        return f'PotentialObjectMining(cams_key={self.cams_key!r}, {args})'
