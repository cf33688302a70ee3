"""Drawing primitives of the ShapeCorpus (pure numpy / OpenCV, no torch): object outlines and
texture families.  The primitives it shares with SyntheticShapes (noise, colours, blobs,
background) are imported from :mod:`.synthetic_shapes_render`.

Outlines are polygons in a unit frame (every vertex within radius 1 of the origin), scaled,
squashed, rotated and filled by :func:`outline_mask`.  Textures are boolean ``size`` x ``size``
maps (True = contrast colour) drawn by :func:`texture_mask`; each family draws its own random
geometry (orientation, sign, handedness, amplitude) from the generator it is handed, and every
family's distribution is symmetric under a horizontal flip, so a flipped image shows a texture
of the same family.  Pixel sizes are the caller's (already multiplied by ``image_size / 96``).
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Tuple

import cv2
import numpy as np

from .synthetic_shapes_render import pixel_grid, smooth_noise

Array = np.ndarray
Centre = Tuple[float, float]

#: sub-pixel bits of the vertex coordinates handed to ``cv2.fillPoly``
_SHIFT = 4


# ----------------------------------------------------------------------------- outlines
def regular_polygon(n: int, start: float = math.pi / 2) -> Array:
    """(n, 2) vertices ``(x, y)`` of the regular n-gon inscribed in the unit circle, the
    first at angle ``start``."""
    t = start + 2.0 * math.pi * np.arange(n) / n
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def star_polygon(points: int, inner: float) -> Array:
    """Vertices of a ``points``-point star: radii alternate 1 and ``inner`` every pi/points."""
    t = math.pi / 2 + math.pi * np.arange(2 * points) / points
    r = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def cross_polygon(half_width: float) -> Array:
    """The 12 vertices of a plus sign whose arms reach 1 and are ``2 * half_width`` wide."""
    w = half_width
    return np.array([(w, 1), (w, w), (1, w), (1, -w), (w, -w), (w, -1),
                     (-w, -1), (-w, -w), (-1, -w), (-1, w), (-w, w), (-w, 1)], np.float64)


def crescent_polygon(cut_radius: float, cut_offset: float, n: int = 48) -> Array:
    """The unit disc minus the disc of radius ``cut_radius`` centred at ``(cut_offset, 0)``.

    Needs ``cut_offset + cut_radius > 1`` (the cut opens the disc: horns) and
    ``cut_offset - cut_radius > -1`` (the back stays whole).  The circles meet at
    ``x0 = (1 + d^2 - k^2) / (2 d)``, ``y0 = sqrt(1 - x0^2)``; the outline runs along the unit
    circle from ``(x0, y0)`` through ``(-1, 0)`` to ``(x0, -y0)``, then back along the cut
    circle through ``(d - k, 0)``.
    """
    k, d = cut_radius, cut_offset
    if not (d + k > 1.0 and d - k > -1.0 and d > 0):
        raise ValueError(f'crescent: cut radius {k} at offset {d} does not make a crescent')
    x0 = (1.0 + d * d - k * k) / (2.0 * d)
    y0 = math.sqrt(max(0.0, 1.0 - x0 * x0))
    t0 = math.atan2(y0, x0)
    outer = np.linspace(t0, 2.0 * math.pi - t0, n)
    p1, p2 = math.atan2(-y0, x0 - d), math.atan2(y0, x0 - d)
    inner = np.linspace(p1, p2 - 2.0 * math.pi, n)[1:-1]
    return np.concatenate([np.stack([np.cos(outer), np.sin(outer)], axis=1),
                           np.stack([d + k * np.cos(inner), k * np.sin(inner)], axis=1)])


def polygon_area(vertices: Array) -> float:
    """Area of a simple polygon (shoelace formula, absolute value)."""
    x, y = vertices[:, 0], vertices[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _outline_ellipse(rng):
    return regular_polygon(48)


def _outline_triangle(rng):
    return regular_polygon(3)


def _outline_square(rng):
    return regular_polygon(4, math.pi / 4)


def _outline_pentagon(rng):
    return regular_polygon(5)


def _outline_hexagon(rng):
    return regular_polygon(6)


def _outline_star(rng):
    return star_polygon(5, float(rng.uniform(0.40, 0.50)))


def _outline_cross(rng):
    return cross_polygon(float(rng.uniform(0.26, 0.36)))


def _outline_crescent(rng):
    return crescent_polygon(float(rng.uniform(0.75, 0.85)), float(rng.uniform(0.40, 0.55)))


#: object outlines, in class order: unit-frame polygons (random star depth, arm width, cut)
OUTLINES: Dict[str, Callable[[np.random.Generator], Array]] = {
    'ellipse': _outline_ellipse,
    'triangle': _outline_triangle,
    'square': _outline_square,
    'pentagon': _outline_pentagon,
    'hexagon': _outline_hexagon,
    'star': _outline_star,
    'cross': _outline_cross,
    'crescent': _outline_crescent,
}


def outline_polygon(name: str, rng: np.random.Generator) -> Array:
    """Unit-frame vertices of one outline of kind ``name`` (see :data:`OUTLINES`)."""
    return OUTLINES[name](rng)


def outline_mask(size: int, vertices: Array, cy: float, cx: float, radius: float,
                 aspect: float, angle: float) -> Array:
    """Boolean mask of the unit-frame polygon ``vertices`` placed in the image.

    A vertex ``(x, y)`` goes to ``(cx, cy) + Rot(angle) (radius x, radius aspect y)``; the
    polygon is filled by ``cv2.fillPoly`` at 1/16-px vertex precision (pixel centres at
    integer coordinates, as in :func:`~.synthetic_shapes_render.pixel_grid`).
    """
    c, s = math.cos(angle), math.sin(angle)
    x = radius * vertices[:, 0]
    y = radius * aspect * vertices[:, 1]
    px = cx + c * x - s * y
    py = cy + s * x + c * y
    pts = np.round(np.stack([px, py], axis=1) * (1 << _SHIFT)).astype(np.int32)
    canvas = np.zeros((size, size), np.uint8)
    cv2.fillPoly(canvas, [pts], 1, lineType=cv2.LINE_8, shift=_SHIFT)
    return canvas.astype(bool)


# ----------------------------------------------------------------------------- textures
def _frac(x: Array) -> Array:
    return x - np.floor(x)


def _rotate(yy: Array, xx: Array, angle: float, origin: Centre = (0.0, 0.0)
            ) -> Tuple[Array, Array]:
    """Coordinates ``(u, v)`` of every pixel in a frame rotated by ``angle`` about ``origin``:
    ``u`` along the direction ``(cos, sin)`` (x right, y down), ``v`` across it."""
    c, s = math.cos(angle), math.sin(angle)
    dy, dx = yy - origin[0], xx - origin[1]
    return dx * c + dy * s, -dx * s + dy * c


def _tilted_stripes(rng, yy, xx, period, centre, tilt_deg: float):
    """Stripes whose lines make ``+-tilt_deg`` with the horizontal (sign random: a flip)."""
    angle = math.radians(tilt_deg) * (1.0 if rng.random() < 0.5 else -1.0)
    _, v = _rotate(yy, xx, angle)
    return _frac(v / period + rng.random()) < 0.5


def _tex_tilt22(rng, yy, xx, period, centre):
    return _tilted_stripes(rng, yy, xx, period, centre, 22.5)


def _tex_tilt67(rng, yy, xx, period, centre):
    return _tilted_stripes(rng, yy, xx, period, centre, 67.5)


def _tex_wavy(rng, yy, xx, period, centre):
    """Stripes displaced across by ``A sin(2 pi u / L + p)``: any direction, ``A`` =
    0.5-0.8 periods, wavelength ``L`` = 2.5-4 periods."""
    u, v = _rotate(yy, xx, float(rng.uniform(0.0, math.pi)))
    amp = float(rng.uniform(0.5, 0.8)) * period
    wavelength = float(rng.uniform(2.5, 4.0)) * period
    wave = amp * np.sin(u * (2.0 * math.pi / wavelength) + float(rng.uniform(0, 2 * math.pi)))
    return _frac((v + wave) / period + rng.random()) < 0.5


def _tex_zigzag(rng, yy, xx, period, centre):
    """Stripes displaced across by a triangle wave ``A (4 |frac(u / L) - 1/2| - 1)``: any
    direction, ``A`` = 0.5-0.8 periods, wavelength 2-3 periods."""
    u, v = _rotate(yy, xx, float(rng.uniform(0.0, math.pi)))
    amp = float(rng.uniform(0.5, 0.8)) * period
    wavelength = float(rng.uniform(2.0, 3.0)) * period
    tri = 4.0 * np.abs(_frac(u / wavelength + rng.random()) - 0.5) - 1.0
    return _frac((v + amp * tri) / period + rng.random()) < 0.5


def _tex_hexdots(rng, yy, xx, period, centre):
    """Dots of radius 0.3 pitch on a hexagonal lattice (pitch 1.1 periods, random rotation):
    the lattice is two rectangular ones, ``(p, p sqrt 3)`` and the same shifted by half."""
    pitch = 1.1 * period
    u, v = _rotate(yy, xx, float(rng.uniform(0.0, math.pi / 3)))
    u = u / pitch + rng.random()
    v = v / (pitch * math.sqrt(3.0)) + rng.random()
    best = None
    for shift in (0.0, 0.5):
        du = _frac(u + shift) - 0.5
        dv = (_frac(v + shift) - 0.5) * math.sqrt(3.0)
        d2 = du * du + dv * dv
        best = d2 if best is None else np.minimum(best, d2)
    return best < 0.3 ** 2


def _tex_squares(rng, yy, xx, period, centre):
    """Concentric squares: bands of the Chebyshev distance ``max(|u|, |v|)`` to a point near
    the object centre, in a randomly rotated frame."""
    jitter = rng.uniform(-0.5, 0.5, size=2) * period
    u, v = _rotate(yy, xx, float(rng.uniform(0.0, math.pi / 2)),
                   (centre[0] + float(jitter[0]), centre[1] + float(jitter[1])))
    return _frac(np.maximum(np.abs(u), np.abs(v)) / period + rng.random()) < 0.5


def _tex_crosshatch(rng, yy, xx, period, centre):
    """Two families of thin lines (a quarter of the 1.3-period spacing wide) at +30 and -30
    degrees to the horizontal."""
    spacing = 1.3 * period
    out = None
    for angle in (math.radians(30.0), math.radians(-30.0)):
        _, v = _rotate(yy, xx, angle)
        lines = _frac(v / spacing + rng.random()) < 0.25
        out = lines if out is None else out | lines
    return out


def _tex_spiral(rng, yy, xx, period, centre):
    """Logarithmic-spiral arms about the object centre (random handedness ``h``):
    bands of ``F = m (h phi + cot(a) ln r) / (2 pi)``, the arms crossing the circles at
    ``a`` = 35-55 degrees; ``m`` arms so that the spacing ``2 pi r sin(a) / m`` is one period
    at ``r`` = 2.5 periods."""
    a = math.radians(float(rng.uniform(35.0, 55.0)))
    h = 1.0 if rng.random() < 0.5 else -1.0
    m = max(3, int(round(2.0 * math.pi * 2.5 * math.sin(a))))
    dy, dx = yy - centre[0], xx - centre[1]
    r = np.sqrt(dy * dy + dx * dx) + 0.5
    phi = np.arctan2(dy, dx)
    f = (m / (2.0 * math.pi)) * (h * phi + np.log(r) / math.tan(a))
    return _frac(f + rng.random()) < 0.5


def _tex_bricks(rng, yy, xx, period, centre):
    """Running-bond brick mortar (random rotation): courses 1.2 periods high, bricks 2.2
    courses long, every other course shifted by half a brick; joints 0.22 course wide."""
    course = 1.2 * period
    length = 2.2 * course
    u, v = _rotate(yy, xx, float(rng.uniform(0.0, math.pi)))
    rows = v / course + rng.random()
    shift = 0.5 * (np.floor(rows) % 2)
    joint = 0.22
    cols = _frac(u / length + shift + rng.random())
    return (_frac(rows) < joint) | (cols < joint * course / length)


def _tex_triangles(rng, yy, xx, period, centre):
    """Two-coloured tiling by equilateral triangles (height 1.4 periods, random rotation):
    three line families with normals at 0, 60 and 120 degrees through common points; the
    colour is the parity of the three band indices, which flips across every edge."""
    height = 1.4 * period
    base = float(rng.uniform(0.0, math.pi / 3))
    oy, ox = rng.uniform(0.0, height, size=2)
    total = None
    for k in range(3):
        u, _ = _rotate(yy, xx, base + k * math.pi / 3, (float(oy), float(ox)))
        band = np.floor(u / height)
        total = band if total is None else total + band
    return total % 2 == 0


def _tex_speckle(rng, yy, xx, period, centre):
    """Random speckle: smooth noise with blobs 0.45 periods wide above a threshold drawn in
    0.3-0.7 (about a quarter to a third of the pixels)."""
    noise = smooth_noise(rng, yy.shape[0], 0.45 * period)
    return noise > float(rng.uniform(0.3, 0.7))


def _tex_plain(rng, yy, xx, period, centre):
    return np.zeros(yy.shape, bool)


#: texture families, in class order (none is one of SyntheticShapes' class patterns:
#: horizontal / vertical / 45-degree stripes, checker, square dot grid, rings, grid, diamond)
TEXTURES: Dict[str, Callable] = {
    'tilt22': _tex_tilt22,
    'tilt67': _tex_tilt67,
    'wavy': _tex_wavy,
    'zigzag': _tex_zigzag,
    'hexdots': _tex_hexdots,
    'squares': _tex_squares,
    'crosshatch': _tex_crosshatch,
    'spiral': _tex_spiral,
    'bricks': _tex_bricks,
    'triangles': _tex_triangles,
    'speckle': _tex_speckle,
    'plain': _tex_plain,
}


def texture_mask(name: str, rng: np.random.Generator, size: int, period: float,
                 centre: Optional[Centre] = None) -> Array:
    """Boolean ``size`` x ``size`` map of texture family ``name`` (True = contrast colour) with
    the given ``period`` (px); ``centre`` anchors the centred families (spiral, squares)."""
    yy, xx = pixel_grid(size)
    if centre is None:
        centre = ((size - 1) / 2.0, (size - 1) / 2.0)
    return TEXTURES[name](rng, yy, xx, float(period), centre)


# ----------------------------------------------------------------------------- lighting
def lighting(rng: np.random.Generator, size: int, shading: float, gradient: float,
             scale: float) -> Array:
    """Multiplicative light map ``(1 + shading n) (1 + gradient ramp)`` (float32): ``n`` is
    smooth noise with 16-px blobs (times ``scale``), ``ramp`` a linear ramp across the image
    in a random direction, from -0.5 to 0.5 along it."""
    yy, xx = pixel_grid(size)
    g = float(rng.uniform(0.0, 2.0 * math.pi))
    half = size / 2.0
    ramp = ((xx - half) * math.cos(g) + (yy - half) * math.sin(g)) / size
    noise = smooth_noise(rng, size, 16 * scale)
    return ((1.0 + shading * noise) * (1.0 + gradient * ramp)).astype(np.float32)
