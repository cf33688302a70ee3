"""OAA's proxy segmentation labels: attention maps + saliency (the reference's ``gen_gt.py``).

With S the saliency (0..255) and A_c the attention map of each image-level class c,
min-max re-normalised to [0, 1], per pixel:

    score_0   = 1 - S / 255                         background cue: inverted saliency
    score_c+1 = A_c = (A_c - min) / (max - min + 1e-8)
    guard     = max(S, max_c 255 [A_c > att_thr])  "this may be an object" evidence (0..255)
    score[score < fg_thr] = 0                       weak evidence dropped, background included
    label     = argmax over {0, c+1} of score       (an all-zero pixel is background)
    label     = 255   where more than one channel has score > conflict
    label     = 255   where label == 0 and guard >= bg_thr
    label     = 255   everywhere if fewer than min_fg_ratio of the pixels are foreground

Constants of the reference: fg_thr 0.3, conflict 0.9, bg_thr 32, att_thr 0.8, min 1 %.
Ties in the argmax go to the lower channel (background, then lower class ids), as NumPy's.
The same rule is NSROM's background-extraction step.

Arithmetic, as the reference's ``gen_gt`` does it (it decides ties): the score stack is
float32.  ``score_0`` is computed in float32 from the float32 saliency; each ``A_c`` is
min-max normalised in float64 (``att_thr`` is applied to that float64 value) and then
stored as float32; ``fg_thr`` and ``conflict`` are compared in float32.  Where
``S + 255 A_c = 255`` the two scores are equal in exact arithmetic; in float32 the class
wins for most such pixels (e.g. S = 65, A = 190 / 255), so they become the class, while a
float64 stack would give the background (and then 255 by the guard).
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

from wsss_core.io import IGNORE_INDEX
from wsss_core.refiners.saliency_fusion import SaliencyRefiner
from wsss_core.registry import LABEL_REFINERS
from wsss_core.saliency import check_saliency


def minmax(a: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """``(a - min) / (max - min + eps)`` in float64."""
    a = np.asarray(a, dtype=np.float64)
    lo = a.min()
    return (a - lo) / (a.max() - lo + eps)


def oaa_proxy_label(saliency_u8: np.ndarray, cams: np.ndarray, class_ids: Sequence[int],
                    fg_thr: float = 0.3, conflict: float = 0.9, bg_thr: float = 32,
                    att_thr: float = 0.8, min_fg_ratio: float = 0.01) -> np.ndarray:
    """The rule of the module docstring for one image.

    Args:
        saliency_u8: S, uint8 (H, W), 255 = salient.
        cams: (K, H, W) attention maps of ``class_ids`` at image size (any scale: each is
            min-max re-normalised).
        class_ids: K distinct 0-based foreground class ids; label value = class id + 1.

    Returns:
        uint8 (H, W): 0 background, class id + 1, 255 ignore.
    """
    sal = np.asarray(saliency_u8)
    cams = np.asarray(cams)
    ids = np.asarray(class_ids, dtype=np.int64).reshape(-1)
    if cams.ndim != 3 or cams.shape[0] != ids.size or cams.shape[1:] != sal.shape:
        raise ValueError(f'cams {cams.shape} must be (K, H, W) with K = {ids.size} class ids '
                         f'and (H, W) = the saliency size {sal.shape}')
    if np.unique(ids).size != ids.size:
        raise ValueError(f'class ids {ids.tolist()} repeat a class')
    order = np.argsort(ids, kind='stable')  # channel order = class order (argmax ties)
    ids = ids[order]
    score = np.empty((ids.size + 1,) + sal.shape, dtype=np.float32)
    sal32 = sal.astype(np.float32)
    score[0] = np.float32(1.0) - sal32 / np.float32(255.0)
    guard = sal32.astype(np.float64)
    for k, idx in enumerate(order, start=1):
        att = minmax(cams[idx])                      # float64, as the reference's
        score[k] = att                               # stored as float32
        guard = np.maximum(guard, 255.0 * (att > att_thr))
    score[score < np.float32(fg_thr)] = 0.0
    n_hot = (score > np.float32(conflict)).sum(axis=0)
    values = np.concatenate([[0], ids + 1]).astype(np.uint8)
    label = values[score.argmax(axis=0)]
    label[n_hot > 1] = IGNORE_INDEX
    label[(label == 0) & (guard >= bg_thr)] = IGNORE_INDEX
    return ignore_if_nearly_empty(label, min_fg_ratio)


def ignore_if_nearly_empty(label: np.ndarray, min_fg_ratio: float = 0.01) -> np.ndarray:
    """OAA's last rule (also NSROM's): when less than ``min_fg_ratio`` of the pixels are
    foreground (1..C), the whole image becomes ignore (255).  In place; returns ``label``."""
    foreground = (label != 0) & (label != IGNORE_INDEX)
    if foreground.mean() < min_fg_ratio:
        label[:] = IGNORE_INDEX
    return label


@LABEL_REFINERS.register_module()
class OAAProxyLabels(SaliencyRefiner):
    """:func:`oaa_proxy_label` on the sample's ``cams`` / ``class_ids`` and saliency.

    The saliency comes from the dataset's ``sample['saliency']`` by default or from a
    SALIENCY_SOURCES ``source`` (the core's
    :class:`~wsss_core.refiners.saliency_fusion.SaliencyRefiner` fetches it).  The CAMs must be at the image size
    (MakeCAMs's output, or attention maps exported at image size).

    Args:
        fg_thr, conflict, bg_thr, att_thr, min_fg_ratio: the rule's constants (0.3, 0.9,
            32 on the 0..255 saliency scale, 0.8, 0.01).
        source: None (the dataset's ``saliency``) or a SALIENCY_SOURCES config / object.
    """

    def __init__(self, fg_thr: float = 0.3, conflict: float = 0.9, bg_thr: float = 32,
                 att_thr: float = 0.8, min_fg_ratio: float = 0.01,
                 source: Optional[Union[dict, object]] = None):
        self.params = dict(fg_thr=float(fg_thr), conflict=float(conflict), bg_thr=float(bg_thr),
                           att_thr=float(att_thr), min_fg_ratio=float(min_fg_ratio))
        super().__init__(source)

    def saliency(self, sample: dict) -> np.ndarray:
        """S of the sample, uint8 at the CAMs' size."""
        return check_saliency(super().saliency(sample), np.shape(sample['cams'])[1:],
                              f"saliency of {sample.get('img_id')}")

    def refine(self, sample: dict) -> dict:
        sample['label'] = oaa_proxy_label(self.saliency(sample), sample['cams'],
                                          sample['class_ids'], **self.params)
        return sample

    def __repr__(self) -> str:
        args = ', '.join(f'{k}={v}' for k, v in self.params.items())
        return f'OAAProxyLabels({args}, source={self.source!r})'
