"""Attention drop, the OAA-drop variant (Jiang et al., TPAMI extension of OAA;
``docs/methods/oaa.md#25-attention-drop``).

With probability ``p`` per image and visit, the input pixels that the image's most recent
accepted attention maps already cover are hidden, so the classifier must find other parts::

    drop ~ Bernoulli(p)                                      per (seed, epoch, image id)
    M(x) = drop * OR_{c in GT, current_c exists} [ up(current_c / 255)(x) > threshold ]
    x'   = x_normalised * (1 - M)                            (pixel -> dataset mean colour)

``up`` is bilinear resizing to the input size; ``current_c`` is the last accepted map of
class c (:class:`~wsss_oaa.accumulation.store.AttentionStore`, ``keep_current=True``).
The reference defaults are ``p = 0.5``, ``threshold = 0.6``.

Two ways to resize (``reference_rounding``):

* ``False`` (float maps): ``up`` interpolates ``current_c / 255`` in float32
  (``F.interpolate``, half-pixel centres), so a pixel interpolating to 153.3 / 255 is dropped.
* ``True`` (the 8-bit store, the reference's arithmetic): the uint8 map is resized with
  OpenCV's bilinear ``cv2.resize`` *on the uint8 array*, whose fixed-point arithmetic rounds
  each output to an integer, and only then divided by 255 (in float64) and compared with
  ``> threshold``.  The pixel at 153.3 becomes 153, 153 / 255 = 0.6 is not > 0.6, so it is
  kept.  The accumulation hook uses this whenever its store is quantised.

The draw uses its own generator seeded by ``(seed, epoch, crc32(image id))``: it does not
depend on the batch order, the data-loader workers or the global RNG, and a resumed run
draws exactly what the uninterrupted one drew.  The model applies the mask
(``OAAClassifier(drop_mask=...)``); these functions only compute it.
"""
from __future__ import annotations

import zlib
from typing import Callable, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F

#: the reference's ``--drop_rate`` and ``--drop_threshold`` (train+.sh)
DEFAULT_DROP = dict(prob=0.5, threshold=0.6)


def drop_config(drop) -> Optional[dict]:
    """The hook's ``drop`` option: None/False -> None, True -> defaults, dict -> checked."""
    if drop is None or drop is False:
        return None
    cfg = dict(DEFAULT_DROP) if drop is True else dict(DEFAULT_DROP, **dict(drop))
    unknown = set(cfg) - set(DEFAULT_DROP)
    if unknown:
        raise ValueError(f'attention drop: unknown option(s) {sorted(unknown)}; '
                         f'expected {sorted(DEFAULT_DROP)}')
    cfg = dict(prob=float(cfg['prob']), threshold=float(cfg['threshold']))
    if not 0.0 <= cfg['prob'] <= 1.0:
        raise ValueError(f"attention drop: prob must lie in [0, 1], got {cfg['prob']}")
    return cfg


def drop_decision(img_id: str, epoch: int, prob: float, seed: int = 0) -> bool:
    """Whether ``img_id`` is dropped in ``epoch``: a Bernoulli(``prob``) draw from a
    generator seeded by ``(seed, epoch, crc32(img_id))``."""
    if prob <= 0.0:
        return False
    entropy = [int(seed) & 0xFFFFFFFF, int(epoch) & 0xFFFFFFFF,
               zlib.crc32(str(img_id).encode('utf-8'))]
    return bool(np.random.default_rng(entropy).random() < prob)


def drop_region(maps: Sequence[np.ndarray], size: Tuple[int, int],
                threshold: float, reference_rounding: bool = False) -> torch.Tensor:
    """(H, W) bool: the union over ``maps`` (uint8 current maps, 0..255) of
    ``bilinear_resize(map / 255, size) > threshold``; all False for no map.

    ``reference_rounding``: resize the uint8 map with ``cv2.resize`` (integer results) and
    divide by 255 afterwards, as the reference does (see the module docstring).
    """
    region = torch.zeros(size, dtype=torch.bool)
    for amap in maps:
        if reference_rounding:
            region |= torch.from_numpy(_resized_uint8(amap, size) / 255.0 > threshold)
            continue
        att = torch.as_tensor(np.asarray(amap), dtype=torch.float32)[None, None] / 255.0
        up = F.interpolate(att, size=tuple(size), mode='bilinear', align_corners=False)[0, 0]
        region |= up > threshold
    return region


def _resized_uint8(amap: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """``amap`` (uint8) resized to ``size`` = (H, W) by OpenCV's bilinear interpolation on
    the uint8 array (half-pixel centres, outputs rounded to integers), as float64."""
    amap = np.asarray(amap)
    if amap.dtype != np.uint8:
        raise TypeError(f'attention drop with reference rounding needs uint8 maps, got '
                        f'{amap.dtype}')
    height, width = int(size[0]), int(size[1])
    return cv2.resize(amap, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.float64)


def batch_drop_mask(img_ids: Sequence[str], labels: torch.Tensor,
                    current: Callable[[Tuple[str, int]], Optional[np.ndarray]],
                    size: Tuple[int, int], epoch: int, prob: float, threshold: float,
                    seed: int = 0, reference_rounding: bool = False) -> torch.Tensor:
    """(B, 1, H, W) float mask for a batch: 1 where the input is hidden, 0 elsewhere.

    Args:
        img_ids / labels: the batch's image ids and (B, C) multi-hot labels.
        current: ``(img_id, class) -> uint8 map or None`` (the store's latest accepted map).
        size: the input's (H, W).
        reference_rounding: resize as the reference does (8-bit store; see the module).
    """
    mask = torch.zeros(len(img_ids), 1, *size, dtype=torch.float32)
    labels = torch.as_tensor(labels)
    for b, img_id in enumerate(img_ids):
        if not drop_decision(img_id, epoch, prob, seed):
            continue
        classes = torch.nonzero(labels[b] > 0).flatten().tolist()
        maps = [m for m in (current((img_id, c)) for c in classes) if m is not None]
        if maps:
            mask[b, 0] = drop_region(maps, size, threshold, reference_rounding).float()
    return mask
