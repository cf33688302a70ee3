"""GETAM's online pseudo labels (joint phase), batched in PyTorch: steps 3-7 of
``docs/methods/getam.md#25-online-pseudo-labels``.

Input: per image the PAMR-refined GETAM maps of the C foreground classes (zeros, or anything,
for the classes absent from the image label: they are zeroed here), the multi-hot image label
and the saliency crop.  Output: the pseudo label (0 = background, c + 1 = class c, 255 = ignore)
and the masks the saliency loss needs.

3. **Normalise** each present class's map by its maximum: ``m_c = M_c / (max_x M_c + eps)``
   (eps = 1e-5); absent classes are 0.
4. **Saliency split.**  ``s = [saliency > 0]``.  ``bg = (1 - max_c m_c)^bg_power`` (32);
   ``i* = argmax [bg, m_0, ..., m_{C-1}]`` (first index on ties); label = 255 where ``i* = 0``
   (the background score wins), ``i*`` (= c + 1) otherwise; then label = 0 wherever ``s = 0``.
   So background comes only from the saliency map; a salient pixel is a class or ignore.
5. **Activation-aware label completion**, ``cut_threshold`` q = 0.9.  For each present class c
   let ``n_c`` be the number of pixels with ``m_c > 0`` and ``t_c`` the value at position
   ``floor(q n_c)`` of those values sorted ascending (the q-quantile); a class with
   ``floor(q n_c) = 0`` (n_c <= 1 at q = 0.9) is skipped, as in the reference.  A pixel still
   labelled 0 (non-salient) with ``m_c > t_c`` becomes c + 1 and is marked ``completed``.  The
   reference does this class by class in index order and a claimed pixel is no longer 0, so
   where several classes qualify the **lowest class index wins** (its "conflict -> 255" branch
   can never fire; it is not reproduced).
6. **Noise removal**: a morphological opening (erosion, then dilation) of the mask
   ``label != 0`` (ignore pixels included) with an ``opening x opening`` all-ones kernel;
   pixels outside the opened mask become 0.  Matches ``cv2.morphologyEx(MORPH_OPEN)`` with its
   default anchor and border: for an even size k the window of pixel p spans offsets
   ``-k//2 .. k - 1 - k//2`` for both steps (so the opened mask is shifted by one pixel
   towards +x/+y relative to a centred opening), and the image border neither erodes nor
   dilates.  ``opening=0`` (or 1) switches this step off.
7. Crop padding has saliency 0, so it is labelled background (0), not ignore; only the dense-
   CRF loss masks it out (through its ROI).

``completed`` is taken before step 6 (the reference writes 255 into its saliency array at step
5; the opening does not touch that array).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from wsss_core.refiners.pamr import normalise_by_max

__all__ = ['OnlinePseudoLabels', 'online_pseudo_labels', 'saliency_split', 'complete_labels',
           'binary_opening', 'IGNORE_INDEX']

IGNORE_INDEX = 255


class OnlinePseudoLabels(NamedTuple):
    """What :func:`online_pseudo_labels` returns (all ``(B, H, W)`` but ``maps``)."""

    label: torch.Tensor      #: long: 0 background, c + 1 class c, 255 ignore
    salient: torch.Tensor    #: bool: saliency > 0 (step 4)
    completed: torch.Tensor  #: bool: pixels claimed by the label completion (step 5)
    maps: torch.Tensor       #: (B, C, H, W) the normalised maps m (step 3)


def saliency_split(maps: torch.Tensor, salient: torch.Tensor, bg_power: float) -> torch.Tensor:
    """Step 4: ``argmax [(1 - max_c m_c)^bg_power, m]`` with background -> 255, then
    non-salient -> 0.  ``maps (B, C, H, W)``, ``salient (B, H, W)`` bool -> label ``(B, H, W)``."""
    peak = maps.amax(1, keepdim=True) if maps.shape[1] else torch.zeros_like(maps[:, :1])
    scores = torch.cat([(1.0 - peak).pow(bg_power), maps], dim=1)
    winner = scores.argmax(1)
    label = torch.where(winner == 0, torch.full_like(winner, IGNORE_INDEX), winner)
    return torch.where(salient, label, torch.zeros_like(label))


def class_quantile_thresholds(maps: torch.Tensor, cut_threshold: float):
    """Step 5's ``t_c`` per (image, class) and whether the class takes part (``floor(q n) > 0``).

    Returns ``(thresholds (B, C), usable (B, C) bool)``.
    """
    flat = maps.flatten(2)
    n_pos = (flat > 0).sum(-1)
    pos = torch.floor(n_pos.double() * float(cut_threshold)).long()
    usable = pos > 0
    ascending = flat.sort(-1).values  # the non-positive values come first
    index = (flat.shape[-1] - n_pos + pos).clamp(max=flat.shape[-1] - 1)
    return ascending.gather(-1, index[..., None])[..., 0], usable


def complete_labels(label: torch.Tensor, maps: torch.Tensor, present: torch.Tensor,
                    cut_threshold: float):
    """Step 5: non-salient pixels (label 0) above a present class's q-quantile get that class
    (the lowest such class index).  Returns ``(label, completed)``."""
    thresholds, usable = class_quantile_thresholds(maps, cut_threshold)
    usable = usable & present
    above = (maps > thresholds[..., None, None]) & usable[..., None, None]  # (B, C, H, W)
    claimed = above.any(1) & (label == 0)
    first = above.to(torch.uint8).argmax(1)  # first class whose test passes
    return torch.where(claimed, first + 1, label), claimed


def binary_opening(mask: torch.Tensor, size: int) -> torch.Tensor:
    """Opening of a bool ``(B, H, W)`` mask with a ``size x size`` square, OpenCV's convention
    (anchor ``size // 2``, border neither erodes nor dilates; see the module docstring)."""
    if size <= 1:
        return mask
    before, after = size // 2, size - 1 - size // 2
    pad = (before, after, before, after)
    x = mask[:, None].float()
    # erosion = not dilation of not-mask; outside the image not-mask is 0 (no erosion)
    eroded = 1.0 - F.max_pool2d(F.pad(1.0 - x, pad, value=0.0), size, stride=1)
    opened = F.max_pool2d(F.pad(eroded, pad, value=0.0), size, stride=1)
    return opened[:, 0] > 0.5


@torch.no_grad()
def online_pseudo_labels(maps: torch.Tensor, labels: torch.Tensor, saliency: torch.Tensor,
                         bg_power: float = 32, cut_threshold: float = 0.9, opening: int = 10,
                         eps: float = 1e-5) -> OnlinePseudoLabels:
    """Steps 3-7 of the module docstring, for a batch.

    Args:
        maps: ``(B, C, H, W)`` PAMR-refined GETAM maps (non-negative), C foreground classes.
        labels: ``(B, C)`` multi-hot image labels (> 0 = present).
        saliency: ``(B, H, W)`` saliency crop, any scale (> 0 = salient; padding 0).
        bg_power: exponent of the background score (32).
        cut_threshold: the completion quantile q (0.9).
        opening: side of the square opening kernel (10; 0 or 1 = no opening).
        eps: added to each map's maximum in step 3 (1e-5).

    Returns:
        :class:`OnlinePseudoLabels` ``(label, salient, completed, maps)``.
    """
    if maps.ndim != 4 or labels.shape != maps.shape[:2] \
            or saliency.shape != maps.shape[:1] + maps.shape[2:]:
        raise ValueError(f'online_pseudo_labels: maps (B, C, H, W), labels (B, C) and saliency '
                         f'(B, H, W) disagree: {tuple(maps.shape)}, {tuple(labels.shape)}, '
                         f'{tuple(saliency.shape)}')
    present = labels > 0
    m = normalise_by_max(maps.float() * present[..., None, None], eps)
    salient = saliency > 0
    label = saliency_split(m, salient, bg_power)
    label, completed = complete_labels(label, m, present, cut_threshold)
    kept = binary_opening(label != 0, int(opening))
    label = torch.where(kept, label, torch.zeros_like(label))
    return OnlinePseudoLabels(label=label, salient=salient, completed=completed, maps=m)
