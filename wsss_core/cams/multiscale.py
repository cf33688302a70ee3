"""Multi-scale + flip CAM inference (psa/irn convention).

For scales s in S (default 1.0, 0.5, 1.5, 2.0) and, with ``flip``, the mirrored image:

    M(x) = sum_{s in S} [ up(G(resize_s(I)))(x) + up(flip(G(flip(resize_s(I)))))(x) ]

where G is a CAM generator and ``up`` bilinear upsampling (align_corners=False) to the
input size; the maps are summed, not averaged (the per-class max normalisation that
follows makes the two equivalent).  Both flips of a scale go through the network as one
batch; :func:`multiscale_cams_loop` is the plain per-scale, per-flip reference.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

DEFAULT_SCALES = (1.0, 0.5, 1.5, 2.0)


def _resize(img: torch.Tensor, scale: float) -> torch.Tensor:
    if scale == 1.0:
        return img
    h, w = img.shape[-2:]
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(img, size=size, mode='bilinear', align_corners=False)


def _up(maps: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(maps, size=size, mode='bilinear', align_corners=False)


def multiscale_cams(generator, model, img: torch.Tensor,
                    scales: Sequence[float] = DEFAULT_SCALES, flip: bool = True,
                    class_ids=None, out_size=None) -> torch.Tensor:
    """Summed CAMs (B, C, H, W) of a batch of normalised images (B, 3, H, W), batched flips.

    ``class_ids``: per image, the classes whose maps are needed (None: all); see
    :class:`~wsss_core.cams.base.BaseCAMGenerator`.  ``out_size``: (H, W) of the maps when
    not the input's (e.g. the original image's when the input was resized).
    """
    size = tuple(out_size) if out_size is not None else img.shape[-2:]
    total = None
    n = img.shape[0]
    ids = None if class_ids is None else list(class_ids) + (list(class_ids) if flip else [])
    for scale in scales:
        x = _resize(img, scale)
        if flip:
            x = torch.cat([x, x.flip(-1)], dim=0)
        maps = generator(model, x, ids)
        if flip:
            maps = maps[:n] + maps[n:].flip(-1)
        maps = _up(maps.float(), size)
        total = maps if total is None else total + maps
    return total


def multiscale_cams_loop(generator, model, img: torch.Tensor,
                         scales: Sequence[float] = DEFAULT_SCALES, flip: bool = True) -> torch.Tensor:
    """Reference implementation: one forward per (image, scale, flip); same result."""
    outs = []
    for i in range(img.shape[0]):
        one = img[i:i + 1]
        total = 0
        for scale in scales:
            x = _resize(one, scale)
            total = total + _up(generator(model, x).float(), one.shape[-2:])
            if flip:
                m = generator(model, x.flip(-1)).flip(-1)
                total = total + _up(m.float(), one.shape[-2:])
        outs.append(total)
    return torch.cat(outs, dim=0)
