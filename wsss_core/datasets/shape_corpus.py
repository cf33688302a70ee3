"""ShapeCorpus: a seeded, procedural single-label classification corpus for pretraining.

A stand-in for ImageNet where no pretrained weights can be had: tens of thousands of
``image_size`` px images (96 by default, SyntheticShapes' size), one object each, whose class
is a pair ``(texture family, outline)`` named ``'texture/outline'``, e.g. ``'spiral/star'``.

**Shared with SyntheticShapes** (the same visual vocabulary, so that features learnt here
transfer): the drawing primitives of :mod:`.synthetic_shapes_render` (smooth noise, HSV
colours, the contrast colour of a texture, polar-blob distractors, the blotchy two-tone
textured background), hard-edged periodic textures painted in a contrast colour over a
randomly coloured body, shading and a light ramp on the object, pixel noise, uint8 RGB.

**Not shared** (so that pretraining teaches generic features -- oriented edges, periodic
textures, colour contrast, outlines -- and not the downstream answer):

* none of SyntheticShapes' class cues: its class textures (horizontal, vertical and
  45-degree stripes, checker, square dot grid, rings, grid, diamond) are not used, nor are its
  class spot hues or context background hues.  The 12 texture families
  (:data:`~.shape_corpus_render.TEXTURES`) are stripes tilted +-22.5 deg and +-67.5 deg,
  wavy and zigzag stripes, a hexagonal dot lattice, concentric squares, a +-30 deg
  crosshatch, a logarithmic spiral, brick mortar, a triangle tiling, speckle and plain;
* the object is a polygon outline (:data:`~.shape_corpus_render.OUTLINES`: ellipse,
  triangle, square, pentagon, hexagon, 5-point star, cross, crescent), not a polar blob;
* colours carry no class: body hue uniform (at least ``body_bg_hue_gap`` from the
  background's), background hue uniform, texture colour derived from the body;
* one object, textured all over; 0 to ``max_distractors`` small untextured blobs behind it;
  no masks, parts or saliency.

Every class is invariant under the horizontal flip of augmentation: each texture family's
random geometry is symmetric under it (the +-tilts, the spiral's handedness and the
orientations are drawn both ways) and every outline is drawn at a random rotation.

:func:`generate_corpus_image` draws image ``index`` of a split from
``numpy.random.default_rng([seed, split_id, index, RNG_STREAM])`` with label
``index % num_classes`` (balanced classes); :func:`~.shape_corpus_cache.ensure_corpus`
writes a whole corpus once into the cache.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

from . import shape_corpus_render as C
from . import synthetic_shapes_render as R
from .generator_config import (check_size_and_classes, config_fingerprint, config_from_knobs,
                               config_to_dict, freeze_sequences)

#: bump whenever the drawing code changes what a given config produces
CORPUS_VERSION: int = 1

#: the last seed word: keeps the corpus's random streams apart from SyntheticShapes'
#: (which seeds with ``[seed, split_id, index]``)
RNG_STREAM: int = 0x5C0A95

TEXTURE_NAMES: Tuple[str, ...] = tuple(C.TEXTURES)
OUTLINE_NAMES: Tuple[str, ...] = tuple(C.OUTLINES)

SPLITS: Dict[str, int] = {'train': 0, 'val': 1}

Range = Tuple[float, float]


def class_pairs(num_textures: int, num_outlines: int) -> Tuple[Tuple[int, int], ...]:
    """The fixed class order: class ``i`` = (texture ``r mod T``, outline ``(r mod S + q) mod
    S``) with ``i = q L + r``, ``L = lcm(T, S)``, ``0 <= r < L``.

    A bijection onto all T x S pairs (each block q covers the pairs with ``t - s = -q`` mod
    ``gcd(T, S)``), ordered so that the first classes already differ in both texture and
    outline: the first ``num_classes`` classes make a smaller corpus.
    """
    lcm = num_textures * num_outlines // math.gcd(num_textures, num_outlines)
    pairs = []
    for i in range(num_textures * num_outlines):
        q, r = divmod(i, lcm)
        pairs.append((r % num_textures, (r % num_outlines + q) % num_outlines))
    return tuple(pairs)


#: (texture index, outline index) of every class, in class order
CLASS_PAIRS: Tuple[Tuple[int, int], ...] = class_pairs(len(TEXTURE_NAMES), len(OUTLINE_NAMES))
#: 'texture/outline' of every class, in class order; a corpus uses the first ``num_classes``
CORPUS_CLASS_NAMES: Tuple[str, ...] = tuple(f'{TEXTURE_NAMES[t]}/{OUTLINE_NAMES[s]}'
                                            for t, s in CLASS_PAIRS)
MAX_CLASSES: int = len(CORPUS_CLASS_NAMES)


@dataclass(frozen=True)
class ShapeCorpusConfig:
    """Every knob of the corpus.  Pixel sizes are for 96 px and scale with ``image_size``.

    Fractions of "the image" are of ``image_size**2``.  Lists given for tuple fields (e.g. from
    a config file) are converted to tuples.
    """
    image_size: int = 96
    num_classes: int = 96
    train_per_class: int = 250
    val_per_class: int = 20
    seed: int = 0
    # the object
    object_area_range: Range = (0.15, 0.45)    # nominal outline area, of the image
    object_aspect_range: Range = (0.7, 1.0)    # minor / major axis scale of the outline
    max_outside: float = 0.15                  # of the outline's radius that may leave the frame
    body_sat_range: Range = (0.25, 0.85)
    body_val_range: Range = (0.45, 0.95)
    body_bg_hue_gap: float = 60.0              # min hue distance (deg) body - background
    body_shading: float = 0.18
    body_gradient: float = 0.15
    # the texture
    texture_period_range: Range = (4.5, 9.0)   # px at 96 px; never below 3 px
    texture_contrast_range: Range = (0.30, 0.55)
    texture_hue_spread: float = 60.0
    # background and clutter
    bg_sat_range: Range = (0.05, 0.6)
    bg_val_range: Range = (0.3, 0.8)
    bg_texture: float = 0.12
    max_distractors: int = 2
    distractor_area_range: Range = (0.01, 0.04)   # of the image, each
    pixel_noise: float = 0.03

    def __post_init__(self):
        freeze_sequences(self)
        self._validate()

    def _validate(self) -> None:
        """Raise ``ValueError`` naming the first inconsistent knob."""
        check_size_and_classes(self, MAX_CLASSES)
        if self.train_per_class < 0 or self.val_per_class < 0:
            raise ValueError(f'train_per_class and val_per_class must be >= 0, got '
                             f'{self.train_per_class} and {self.val_per_class}')
        bounds = dict(object_area_range=(0.0, 1.0), object_aspect_range=(0.0, 1.0),
                      body_sat_range=(0.0, 1.0), body_val_range=(0.0, 1.0),
                      texture_period_range=(0.0, math.inf), texture_contrast_range=(0.0, 1.0),
                      bg_sat_range=(0.0, 1.0), bg_val_range=(0.0, 1.0),
                      distractor_area_range=(0.0, 1.0))
        for name, (lo, hi) in bounds.items():
            value = getattr(self, name)
            if (not isinstance(value, tuple) or len(value) != 2
                    or not lo <= value[0] <= value[1] <= hi or value[1] <= 0):
                raise ValueError(f'{name} must be a (low, high) pair with {lo} <= low <= high '
                                 f'<= {hi} and high > 0, got {value!r}')
        if not 0.0 <= self.max_outside < 1.0:
            raise ValueError(f'max_outside must lie in [0, 1), got {self.max_outside}')
        if not 0.0 <= self.body_bg_hue_gap <= 180.0:
            raise ValueError(f'body_bg_hue_gap must lie in 0..180, got {self.body_bg_hue_gap}')
        if self.max_distractors < 0:
            raise ValueError(f'max_distractors must be >= 0, got {self.max_distractors}')
        for name in ('body_shading', 'body_gradient', 'bg_texture', 'pixel_noise',
                     'texture_hue_spread'):
            if getattr(self, name) < 0:
                raise ValueError(f'{name} must be >= 0, got {getattr(self, name)}')

    @property
    def class_names(self) -> Tuple[str, ...]:
        """The corpus's ``num_classes`` class names ('texture/outline')."""
        return CORPUS_CLASS_NAMES[:self.num_classes]

    def split_size(self, split: str) -> int:
        """Number of images of ``split`` ('train' or 'val'): per-class count x classes."""
        per_class = {'train': self.train_per_class, 'val': self.val_per_class}[split]
        return per_class * self.num_classes

    def to_dict(self) -> dict:
        """All fields as plain JSON-able values."""
        return config_to_dict(self)

    def fingerprint(self) -> str:
        """Short stable hash (12 hex digits) of all fields and :data:`CORPUS_VERSION`."""
        return config_fingerprint(self, 'corpus_version', CORPUS_VERSION)


def corpus_config(**knobs) -> ShapeCorpusConfig:
    """Build the corpus config, rejecting unknown knobs with the list of valid ones."""
    return config_from_knobs(ShapeCorpusConfig, 'ShapeCorpus', knobs)


def class_of(cfg: ShapeCorpusConfig, index: int) -> int:
    """Label of image ``index`` of any split: ``index mod num_classes`` (balanced)."""
    return index % cfg.num_classes


# ----------------------------------------------------------------------------- drawing
def _place_object(rng, cfg: ShapeCorpusConfig, vertices: np.ndarray) -> np.ndarray:
    """Mask of the outline ``vertices`` at a random size, aspect, rotation and position.

    The nominal area ``a`` (of the image) gives the radius ``sqrt(a size^2 / (A aspect))``
    (``A`` = the unit polygon's area), capped at ``size / 2``; the centre is uniform where at
    most ``max_outside`` of the radius leaves the frame (the image centre if nowhere).
    """
    size = cfg.image_size
    area = float(rng.uniform(*cfg.object_area_range)) * size * size
    aspect = float(rng.uniform(*cfg.object_aspect_range))
    angle = float(rng.uniform(0.0, 2.0 * math.pi))
    radius = min(math.sqrt(area / (C.polygon_area(vertices) * aspect)), size / 2.0)
    lo, hi = (1.0 - cfg.max_outside) * radius, size - 1 - (1.0 - cfg.max_outside) * radius
    cy, cx = rng.uniform(lo, hi, size=2) if hi > lo else ((size - 1) / 2.0,) * 2
    return C.outline_mask(size, vertices, float(cy), float(cx), radius, aspect, angle)


def _body_hsv(rng, cfg: ShapeCorpusConfig, bg_hue: float) -> Tuple[float, float, float]:
    """Body HSV: hue uniform among those at least ``body_bg_hue_gap`` from the background's."""
    gap = cfg.body_bg_hue_gap
    hue = bg_hue + float(rng.uniform(gap, 360.0 - gap))
    return hue, float(rng.uniform(*cfg.body_sat_range)), float(rng.uniform(*cfg.body_val_range))


def _paint_distractors(rng, cfg: ShapeCorpusConfig, img: np.ndarray, light: np.ndarray) -> None:
    """0..max_distractors small untextured polar blobs of random colour (in place)."""
    size = cfg.image_size
    for _ in range(int(rng.integers(0, cfg.max_distractors + 1))):
        area = float(rng.uniform(*cfg.distractor_area_range)) * size * size
        aspect = float(rng.uniform(0.5, 1.0))
        amps = rng.uniform(0.0, 0.15, size=3)
        phases = rng.uniform(0.0, 2.0 * math.pi, size=3)
        radius = math.sqrt(area / (math.pi * aspect * R.blob_area_factor(amps)))
        cy, cx = rng.uniform(0, size, size=2)
        blob = R.blob_mask(size, float(cy), float(cx), radius, aspect,
                           float(rng.uniform(0, math.pi)), amps, phases)
        colour = R.hsv_to_rgb(float(rng.uniform(0, 360)), float(rng.uniform(0.1, 0.9)),
                              float(rng.uniform(0.2, 0.95)))
        img[blob] = colour * light[blob, None]


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def draw_corpus_image(rng: np.random.Generator, cfg: ShapeCorpusConfig, label: int
                      ) -> Tuple[np.ndarray, np.ndarray]:
    """One image of class ``label`` drawn from ``rng``: ``(img uint8 (H, W, 3) RGB, object
    mask bool (H, W))``.

    Background (random hue, two-tone, textured), then the distractors, then the object: its
    outline filled with the body colour, the class texture over all of it in a contrast colour
    (value differing by ``texture_contrast_range``), both lit by one light map; then pixel
    noise.  The texture period is ``U(texture_period_range) * image_size / 96``, >= 3 px.
    """
    size, scale = cfg.image_size, cfg.image_size / 96.0
    t_idx, s_idx = CLASS_PAIRS[label]
    bg_hue = float(rng.uniform(0.0, 360.0))
    img = R.two_tone_background(rng, size, (bg_hue, float(rng.uniform(*cfg.bg_sat_range)),
                                            float(rng.uniform(*cfg.bg_val_range))),
                                cfg.bg_texture, scale)
    light = C.lighting(rng, size, cfg.body_shading, cfg.body_gradient, scale)
    _paint_distractors(rng, cfg, img, light)
    mask = _place_object(rng, cfg, C.outline_polygon(OUTLINE_NAMES[s_idx], rng))
    body = _body_hsv(rng, cfg, bg_hue)
    img[mask] = R.hsv_to_rgb(*body) * light[mask, None]
    period = max(3.0, float(rng.uniform(*cfg.texture_period_range)) * scale)
    ys, xs = np.nonzero(mask)
    centre = (float(ys.mean()), float(xs.mean())) if ys.size else None
    texture = C.texture_mask(TEXTURE_NAMES[t_idx], rng, size, period, centre) & mask
    colour = R.contrast_colour(rng, body, float(rng.uniform(*cfg.texture_contrast_range)),
                               cfg.texture_hue_spread)
    img[texture] = colour * light[texture, None]
    img += cfg.pixel_noise * rng.standard_normal(img.shape).astype(np.float32)
    return _to_uint8(img), mask


def generate_corpus_image(cfg: ShapeCorpusConfig, split_id: int, index: int
                          ) -> Tuple[np.ndarray, int]:
    """Image ``index`` of split ``split_id`` (0 = train, 1 = val): ``(img uint8 (H, W, 3) RGB,
    label)``, deterministic in ``(cfg, split_id, index)``; label = ``index mod num_classes``,
    drawn from ``numpy.random.default_rng([cfg.seed, split_id, index, RNG_STREAM])``."""
    rng = np.random.default_rng([cfg.seed, split_id, index, RNG_STREAM])
    label = class_of(cfg, index)
    img, _ = draw_corpus_image(rng, cfg, label)
    return img, label
