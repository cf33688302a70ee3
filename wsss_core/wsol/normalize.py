"""Score-map normalisation for WSOL evaluation (docs/wsol_evaluation.md#protocol-per-image, step 2).

Both functions take a CAM of any float dtype (H, W) and return a float32 map in [0, 1].
A map containing NaN, or one that is constant, becomes all zeros (no division by zero),
as the wsolevaluation reader does for degenerate maps.
"""
from __future__ import annotations

import numpy as np

#: percentile MoANA subtracts before rescaling (65 % of the pixels become 0)
MOANA_PERCENTILE = 65.0


def _as_float_map(cam) -> np.ndarray:
    # float32 arithmetic, as the reference code on float32 CAMs (the uint8 quantisation
    # of the box extraction can see the last bit)
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 2:
        raise ValueError(f'a score map must be 2-D (H, W), got shape {cam.shape}')
    return cam


def minmax_normalize(cam) -> np.ndarray:
    """Min-max normalisation (wsolevaluation):

        S(x) = (M(x) - min_y M(y)) / (max_y M(y) - min_y M(y))

    A constant map or one with NaN gives zeros.
    """
    cam = _as_float_map(cam)
    if cam.size == 0 or np.isnan(cam).any():
        return np.zeros(cam.shape, np.float32)
    low, high = cam.min(), cam.max()
    if not high > low:
        return np.zeros(cam.shape, np.float32)
    return (cam - low) / (high - low)


def percentile_normalize(cam, q: float = MOANA_PERCENTILE) -> np.ndarray:
    """MoANA's normalisation: subtract the q-th percentile, divide by the new maximum, clip:

        S(x) = clip( (M(x) - P_q(M)) / max_y (M(y) - P_q(M)), 0, 1 )

    ``P_q`` is numpy's linearly interpolated percentile; with q = 65 about 65 % of the
    pixels become 0.  A map whose maximum equals its q-th percentile (e.g. a constant one)
    or that has NaN gives zeros.
    """
    if not 0.0 <= float(q) <= 100.0:
        raise ValueError(f'percentile q must lie in [0, 100], got {q}')
    cam = _as_float_map(cam)
    if cam.size == 0 or np.isnan(cam).any():
        return np.zeros(cam.shape, np.float32)
    shifted = cam - np.float32(np.percentile(cam, q))
    peak = shifted.max()
    if not peak > 0:
        return np.zeros(cam.shape, np.float32)
    return np.clip(shifted / peak, 0.0, 1.0).astype(np.float32)


NORMALIZERS = {'minmax': minmax_normalize, 'percentile': percentile_normalize}
