"""EDAM's saliency fusion: class scores + a saliency map -> pseudo label
(``docs/methods/edam.md#8-inference-and-pseudo-labels``).

With C the number of foreground classes, S the saliency map (uint8, 0..255) and ``score_k``
the score maps of the image's classes k (normalised DA masks / CAMs, or dense-CRF
probabilities), per pixel, in this order (the reference code's form of the paper's
Algorithm 1)::

    T       = zeros(C + 1, H, W);  T[k + 1] = score_k      for the image's classes k
    bg      = 1 where S <= 100 theta, else 0              (theta 0.2 -> S <= 20 of 255)
    T[T < alpha] = -2                                     too weak: can never win
    T[T > beta]  = +2                                     sure: beats the background plane
    T[0]    = bg                                          (after the two rules above)
    label   = argmax_l T[l]                               ties -> lowest index

so a salient pixel (bg 0) takes its best class unless every class is below ``alpha`` (then
it is background: the tie 0 = 0 with the untouched absent-class planes, or 0 > -2); a
non-salient pixel (bg 1) is background unless a class is above ``beta``; several classes
above ``beta`` tie at 2 and the lowest class id wins; background wins every tie.

Implementation note: the planes of absent classes are 0 (or -2 when ``alpha > 0``) and never
win: the background plane (0 or 1, index 0) is at least as large and comes first.  So the
argmax over ``[bg] + the image's classes in class-id order`` gives the same label as over
all C + 1 planes, without allocating them.  Comparisons are made in float64 on the scores
as given.

Presets (:data:`EDAM_FUSION_PRESETS`): ``crf`` -- the README / CRF path (theta 0.2,
alpha 1e-6, beta 0.99999: CRF outputs are nearly binary); ``no_crf`` -- on the DA masks
directly (alpha 0.25, beta 0.95 per EDAM issue 4; theta 0.2, unconfirmed for this path).

The refiner's three routes (``docs/methods/edam.md`` §8 step 5), as RefineLabels chains:

* no saliency, no CRF: ``[BackgroundThreshold(threshold=theta)]`` (the core's constant
  background plane: argmax over ``[theta, M_1..M_K]``, background wins ties);
* CRF: ``[DenseCRF(preset='edam')]`` (psa kernels, 3 iterations, background
  ``(1 - max_k M_k)^1``);
* CRF + saliency: ``[DenseCRF(preset='edam', keep_probs=True),
  EDAMSaliencyFusion(scores='crf_probs')]`` -- the written label is the *fused* one (the
  reference's ``infer_cls.py`` saved the unfused CRF argmax on that path).
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

from wsss_core.evaluation.cam_labels import resize_cams
from wsss_core.refiners.saliency_fusion import SaliencyRefiner
from wsss_core.registry import LABEL_REFINERS
from wsss_core.saliency import check_saliency

from . import crf_preset  # noqa: F401  (registers the dense-CRF preset 'edam')

__all__ = ['EDAM_FUSION_PRESETS', 'edam_fuse', 'EDAMSaliencyFusion']

#: (theta, alpha, beta) of the two published settings
EDAM_FUSION_PRESETS = {
    'crf': dict(theta=0.2, alpha=1e-6, beta=0.99999),
    'no_crf': dict(theta=0.2, alpha=0.25, beta=0.95),
}
WEAK, SURE = -2.0, 2.0


def edam_fuse(scores: np.ndarray, class_ids: Sequence[int], saliency_u8: np.ndarray,
              theta: float, alpha: float, beta: float) -> np.ndarray:
    """The rule of the module docstring for one image.

    Args:
        scores: ``(K, H, W)`` score maps of ``class_ids`` (any order).
        class_ids: K distinct 0-based foreground class ids; label value = class id + 1.
        saliency_u8: S, ``(H, W)`` on the 0..255 scale (compared with ``100 theta``).
        theta, alpha, beta: the three thresholds.

    Returns:
        uint8 ``(H, W)``: 0 background, class id + 1.
    """
    sal = np.asarray(saliency_u8)
    scores = np.asarray(scores, dtype=np.float64)
    ids = np.asarray(class_ids, dtype=np.int64).reshape(-1)
    if scores.ndim != 3 or scores.shape[0] != ids.size or scores.shape[1:] != sal.shape:
        raise ValueError(f'scores {scores.shape} must be (K, H, W) with K = {ids.size} class '
                         f'ids and (H, W) = the saliency size {sal.shape}')
    if np.unique(ids).size != ids.size:
        raise ValueError(f'class ids {ids.tolist()} repeat a class')
    if not np.isfinite(scores).all():
        raise ValueError('EDAM saliency fusion: the scores contain NaN or inf')
    order = np.argsort(ids, kind='stable')  # planes in class-id order: ties -> lowest id
    t = np.empty((ids.size + 1,) + sal.shape, dtype=np.float64)
    t[0] = 0.0  # the zero plane T[0] before it is replaced; the rules see it too
    t[1:] = scores[order]
    t[t < alpha] = WEAK
    t[t > beta] = SURE
    t[0] = (sal <= theta * 100).astype(np.float64)
    values = np.concatenate([[0], ids[order] + 1]).astype(np.uint8)
    return values[t.argmax(axis=0)]


@LABEL_REFINERS.register_module()
class EDAMSaliencyFusion(SaliencyRefiner):
    """:func:`edam_fuse` on a sample's CAMs or dense-CRF probabilities and its saliency.

    Args:
        preset: 'crf' or 'no_crf' (:data:`EDAM_FUSION_PRESETS`); default: 'crf' when
            ``scores='crf_probs'``, else 'no_crf'.
        theta, alpha, beta: override the preset's values.
        scores: 'cams' -- ``sample['cams']`` (resized bilinearly to the saliency size if
            they differ); 'crf_probs' -- ``sample['crf_probs']`` (K+1, H, W) left by a
            preceding ``DenseCRF(keep_probs=True)``: channel 0 (the CRF's background) is
            dropped, channel i is class ``class_ids[i - 1]``.
        source: None (the dataset's ``saliency``) or a SALIENCY_SOURCES config / object, as
            for the core's :class:`~wsss_core.refiners.saliency_fusion.SaliencyRefiner`.
    """

    def __init__(self, preset: Optional[str] = None, theta: Optional[float] = None,
                 alpha: Optional[float] = None, beta: Optional[float] = None,
                 scores: str = 'cams', source: Optional[Union[dict, object]] = None):
        if scores not in ('cams', 'crf_probs'):
            raise ValueError(f"scores must be 'cams' or 'crf_probs', not {scores!r}")
        if preset is None:
            preset = 'crf' if scores == 'crf_probs' else 'no_crf'
        if preset not in EDAM_FUSION_PRESETS:
            raise KeyError(f'unknown EDAM fusion preset {preset!r}; presets: '
                           f'{sorted(EDAM_FUSION_PRESETS)}')
        params = dict(EDAM_FUSION_PRESETS[preset])
        given = dict(theta=theta, alpha=alpha, beta=beta)
        params.update({k: float(v) for k, v in given.items() if v is not None})
        self.preset, self.scores, self.params = preset, scores, params
        super().__init__(source)

    def saliency(self, sample: dict) -> np.ndarray:
        """S of the sample, uint8 (H, W): the dataset's or the source's (at the image size)."""
        sal = np.asarray(super().saliency(sample))
        return check_saliency(sal, sal.shape, f"saliency of {sample.get('img_id')}")

    def score_maps(self, sample: dict, shape) -> np.ndarray:
        """The (K, H, W) class scores the rule reads (see ``scores``), at ``shape``."""
        k = np.asarray(sample['class_ids']).size
        if self.scores == 'cams':
            cams = np.asarray(sample['cams'], dtype=np.float32)
            return resize_cams(cams, shape) if cams.shape[1:] != tuple(shape) else cams
        probs = sample.get('crf_probs')
        if probs is None:
            raise KeyError(f"EDAMSaliencyFusion(scores='crf_probs') found no 'crf_probs' for "
                           f"image {sample.get('img_id')}: put DenseCRF(keep_probs=True) "
                           'before it in the refiner chain')
        probs = np.asarray(probs)
        if probs.ndim != 3 or probs.shape[0] != k + 1:
            raise ValueError(f"crf_probs of {sample.get('img_id')} are {probs.shape}, expected "
                             f'({k + 1}, H, W): background + {k} classes')
        return probs[1:]

    def refine(self, sample: dict) -> dict:
        sal = self.saliency(sample)
        sample['label'] = edam_fuse(self.score_maps(sample, sal.shape), sample['class_ids'],
                                    sal, **self.params)
        return sample

    def __repr__(self) -> str:
        args = ', '.join(f'{k}={v}' for k, v in self.params.items())
        return (f'EDAMSaliencyFusion(preset={self.preset!r}, {args}, scores={self.scores!r}, '
                f'source={self.source!r})')
