"""Drawing primitives of the SyntheticShapes generator (pure numpy / OpenCV, no torch).

Everything here is a function of its arguments and of the ``numpy.random.Generator`` it is
handed, so a sample is reproducible from its RNG seed alone.  Images are float32 RGB in
[0, 1] while they are composed; :mod:`wsss_core.datasets.synthetic_shapes` quantises them.

Sizes are given for a 96-px image and multiplied by ``scale = image_size / 96`` by the caller.
"""
from __future__ import annotations

import colorsys
import functools
import math
from typing import Callable, Dict, Sequence, Tuple

import cv2
import numpy as np

Array = np.ndarray


# ----------------------------------------------------------------------------- basics
@functools.lru_cache(maxsize=8)
def pixel_grid(size: int) -> Tuple[Array, Array]:
    """``(yy, xx)`` float32 pixel-centre coordinates of a ``size`` x ``size`` image (read-only)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    yy.flags.writeable = False
    xx.flags.writeable = False
    return yy, xx


def hsv_to_rgb(hue_deg: float, sat: float, val: float) -> Array:
    """One HSV colour (hue in degrees, saturation and value clipped to [0, 1]) as RGB (3,)."""
    rgb = colorsys.hsv_to_rgb((hue_deg % 360.0) / 360.0, min(max(sat, 0.0), 1.0),
                              min(max(val, 0.0), 1.0))
    return np.asarray(rgb, dtype=np.float32)


def smooth_noise(rng: np.random.Generator, size: int, cell: float) -> Array:
    """Zero-mean, unit-scale smooth noise with blobs about ``cell`` px wide.

    An ``(size/cell + 2)^2`` standard-normal grid is bicubically upsampled by ``cell`` and
    cropped at a random offset.
    """
    cell = max(2, int(round(cell)))
    n = size // cell + 2
    grid = rng.standard_normal((n, n)).astype(np.float32)
    big = cv2.resize(grid, (n * cell, n * cell), interpolation=cv2.INTER_CUBIC)
    oy, ox = rng.integers(0, n * cell - size + 1, size=2)
    return big[oy:oy + size, ox:ox + size]


def ellipse_mask(size: int, cy: float, cx: float, semi_major: float, semi_minor: float,
                 angle: float) -> Array:
    """Boolean mask of a filled ellipse centred at ``(cy, cx)``, rotated by ``angle`` (rad)."""
    yy, xx = pixel_grid(size)
    dy, dx = yy - cy, xx - cx
    c, s = math.cos(angle), math.sin(angle)
    u = (dx * c + dy * s) / max(semi_major, 0.5)
    v = (-dx * s + dy * c) / max(semi_minor, 0.5)
    return u * u + v * v <= 1.0


def disc_kernel(radius: int) -> Array:
    """Elliptical (disc) structuring element of the given radius."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def distance_inside(mask: Array) -> Array:
    """Euclidean distance of every pixel of ``mask`` to the nearest pixel outside it."""
    return cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)


def two_tone_background(rng: np.random.Generator, size: int, hsv: Tuple[float, float, float],
                        texture: float, scale: float) -> Array:
    """Blotchy two-tone background (float32 RGB) around the HSV colour ``hsv``.

    Second tone: hue +-40 deg, saturation x U(0.6, 1.3), value x U(0.6, 1.2).  The tones mix
    by ``sigmoid(2 n1)`` of smooth noise ``n1`` with 24-px blobs, and the result is multiplied
    by ``1 + texture * n2`` (smooth noise with 6-px blobs); pixel sizes times ``scale``.
    """
    hue, sat, val = hsv
    c1 = hsv_to_rgb(hue, sat, val)
    c2 = hsv_to_rgb(hue + float(rng.choice([-40.0, 40.0])),
                    sat * float(rng.uniform(0.6, 1.3)), val * float(rng.uniform(0.6, 1.2)))
    mix = 1.0 / (1.0 + np.exp(-2.0 * smooth_noise(rng, size, 24 * scale)))
    img = c1 * (1.0 - mix[..., None]) + c2 * mix[..., None]
    img *= (1.0 + texture * smooth_noise(rng, size, 6 * scale))[..., None]
    return img.astype(np.float32)


# ----------------------------------------------------------------------------- bodies
def blob_area_factor(amps: Sequence[float]) -> float:
    """Area of the polar blob r(t) = R (1 + sum a_k cos(k t + p_k)) divided by pi R^2."""
    return 1.0 + 0.5 * float(np.sum(np.square(amps)))


def blob_mask(size: int, cy: float, cx: float, radius: float, aspect: float, theta: float,
              amps: Sequence[float], phases: Sequence[float]) -> Array:
    """Boolean mask of a polar blob (harmonics k = 2, 3, ...) in a rotated, squashed frame.

    In the frame rotated by ``theta`` and with the minor axis scaled by ``aspect``, the
    boundary is ``r(t) = radius * (1 + sum_k amps[k] cos((k + 2) t + phases[k]))``.  Only the
    blob's bounding box is evaluated; ``cos(k t + p)`` is ``Re(z**k e^{ip})`` with
    ``z = e^{it}``, which avoids trigonometric functions per pixel.
    """
    out = np.zeros((size, size), bool)
    reach = radius * (1.0 + float(np.sum(np.abs(amps)))) + 1.0
    y0, y1 = max(0, int(cy - reach)), min(size, int(math.ceil(cy + reach)) + 1)
    x0, x1 = max(0, int(cx - reach)), min(size, int(math.ceil(cx + reach)) + 1)
    if y0 >= y1 or x0 >= x1:
        return out
    yy, xx = pixel_grid(size)
    dy, dx = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
    c, s = math.cos(theta), math.sin(theta)
    u = dx * c + dy * s
    v = (-dx * s + dy * c) / aspect
    r = np.sqrt(u * u + v * v)
    z = (u + 1j * v) / np.maximum(r, 1e-6)
    zk = z * z
    boundary = np.ones_like(r)
    for a, p in zip(amps, phases):
        boundary += float(a) * (zk * complex(math.cos(p), math.sin(p))).real
        zk = zk * z
    out[y0:y1, x0:x1] = r <= radius * boundary
    return out


# ----------------------------------------------------------------------------- class patterns
def _frac(x: Array) -> Array:
    return x - np.floor(x)


def _stripes(coord: Array, period: float) -> Array:
    return _frac(coord / period) < 0.5


def _pattern_hstripe(yy, xx, period, phase, centre):
    return _stripes(yy + phase[0], period)


def _pattern_vstripe(yy, xx, period, phase, centre):
    return _stripes(xx + phase[1], period)


def _pattern_dstripe(yy, xx, period, phase, centre):
    return _stripes((xx + yy) * (1.0 / math.sqrt(2.0)) + phase[0], period)


def _pattern_checker(yy, xx, period, phase, centre):
    cell = 0.6 * period
    return (np.floor((yy + phase[0]) / cell) + np.floor((xx + phase[1]) / cell)) % 2 == 0


def _pattern_dots(yy, xx, period, phase, centre):
    pitch = 1.1 * period
    dy = _frac((yy + phase[0]) / pitch) - 0.5
    dx = _frac((xx + phase[1]) / pitch) - 0.5
    return dy * dy + dx * dx < 0.3 ** 2


def _pattern_rings(yy, xx, period, phase, centre):
    r = np.sqrt((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2)
    return _frac(r / period + phase[0] / period) < 0.5


def _pattern_grid(yy, xx, period, phase, centre):
    fy = np.abs(_frac((yy + phase[0]) / period) - 0.5)
    fx = np.abs(_frac((xx + phase[1]) / period) - 0.5)
    return np.minimum(fy, fx) < 0.17


def _pattern_diamond(yy, xx, period, phase, centre):
    cell = 0.6 * period
    u = (xx + yy) * (1.0 / math.sqrt(2.0)) + phase[0]
    v = (xx - yy) * (1.0 / math.sqrt(2.0)) + phase[1]
    return (np.floor(u / cell) + np.floor(v / cell)) % 2 == 0


#: class pattern geometries, in class order; every one is invariant (as a class) under the
#: horizontal flip used for augmentation (a flipped 'dstripe' is an anti-diagonal stripe,
#: which no other class uses).
PATTERNS: Dict[str, Callable] = {
    'hstripe': _pattern_hstripe,
    'vstripe': _pattern_vstripe,
    'dstripe': _pattern_dstripe,
    'checker': _pattern_checker,
    'dots': _pattern_dots,
    'rings': _pattern_rings,
    'grid': _pattern_grid,
    'diamond': _pattern_diamond,
}


def class_pattern(name: str, size: int, period: float, phase: Tuple[float, float],
                  centre: Tuple[float, float]) -> Array:
    """Boolean ``size`` x ``size`` map of the class pattern ``name`` (1 = contrast colour)."""
    yy, xx = pixel_grid(size)
    return PATTERNS[name](yy, xx, period, phase, centre)


# ----------------------------------------------------------------------------- parts
def sample_part_region(rng: np.random.Generator, visible: Array, taken: Array,
                       area: float, aspect: float) -> Array:
    """Place one elliptical part of ``area`` px inside ``visible``, away from ``taken``.

    The centre is drawn uniformly among object pixels deep enough inside the object
    (distance to the outside >= min(minor semi-axis, 0.6 * max distance)) and far enough
    from parts already placed (>= major semi-axis + 1); the constraints are relaxed in turn
    when no pixel satisfies them.  The ellipse is clipped to ``visible & ~taken``; the result
    may be empty when the object has no free pixel left.
    """
    size = visible.shape[0]
    free = visible & ~taken
    if not free.any():
        return free
    semi_minor = math.sqrt(area * aspect / math.pi)
    semi_major = semi_minor / aspect
    depth = distance_inside(visible)
    gap = distance_inside(~taken) if taken.any() else np.full(visible.shape, np.inf, np.float32)
    deep = depth >= min(semi_minor, 0.6 * float(depth.max()))
    for candidates in (free & deep & (gap >= semi_major + 1.0),
                       free & (gap >= semi_minor + 1.0),
                       free):
        ys, xs = np.nonzero(candidates)
        if ys.size:
            break
    k = int(rng.integers(ys.size))
    angle = float(rng.uniform(0.0, math.pi))
    region = ellipse_mask(size, float(ys[k]), float(xs[k]), semi_major, semi_minor, angle)
    return region & free


def contrast_colour(rng: np.random.Generator, body_hsv: Tuple[float, float, float],
                    contrast: float, hue_spread: float) -> Array:
    """A colour that differs from the body mainly in value (by ``contrast``), class-agnostic.

    Darker than the body when the body value exceeds 0.6 (or when it cannot get brighter by
    ``contrast``), brighter otherwise; the hue moves by U(-hue_spread, hue_spread).
    """
    h, s, v = body_hsv
    v2 = v - contrast if (v > 0.6 or v + contrast > 1.0) else v + contrast
    h2 = h + float(rng.uniform(-hue_spread, hue_spread))
    return hsv_to_rgb(h2, s + 0.1, v2)


# ----------------------------------------------------------------------------- saliency
def object_saliency(rng: np.random.Generator, visible: Array, max_morph: int,
                    p_miss: float, miss_area: Tuple[float, float],
                    confidence: Tuple[float, float]) -> Array:
    """Saliency of one object: its visible mask eroded/dilated by a random radius, maybe with a
    disc-shaped missed region, filled with a per-object confidence (float32 map)."""
    size = visible.shape[0]
    region = visible.astype(np.uint8)
    r = int(rng.integers(-max_morph, max_morph + 1)) if max_morph > 0 else 0
    if r > 0:
        region = cv2.dilate(region, disc_kernel(r))
    elif r < 0:
        region = cv2.erode(region, disc_kernel(-r))
    region = region.astype(bool)
    if rng.random() < p_miss and region.any():
        ys, xs = np.nonzero(visible)
        k = int(rng.integers(ys.size))
        hole_area = float(rng.uniform(*miss_area)) * float(visible.sum())
        rad = math.sqrt(hole_area / math.pi)
        region &= ~ellipse_mask(size, float(ys[k]), float(xs[k]), rad, rad, 0.0)
    return region.astype(np.float32) * float(rng.uniform(*confidence))


def false_alarms(rng: np.random.Generator, size: int, count: int, area: Tuple[float, float],
                 value: Tuple[float, float]) -> Array:
    """``count`` elliptical false-positive blobs anywhere in the image (max-combined map)."""
    out = np.zeros((size, size), np.float32)
    for _ in range(count):
        a = float(rng.uniform(*area)) * size * size
        aspect = float(rng.uniform(0.5, 1.0))
        minor = math.sqrt(a * aspect / math.pi)
        cy, cx = rng.uniform(0, size, size=2)
        blob = ellipse_mask(size, float(cy), float(cx), minor / aspect, minor,
                            float(rng.uniform(0, math.pi)))
        np.maximum(out, blob * float(rng.uniform(*value)), out=out)
    return out


def gaussian_blur(img: Array, sigma: float) -> Array:
    """Gaussian blur with reflected borders (kernel size from sigma)."""
    return cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, sigmaY=sigma,
                            borderType=cv2.BORDER_REFLECT)
