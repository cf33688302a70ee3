"""SyntheticShapes: a seeded, procedural dataset that reproduces the WSSS difficulty.

Each image holds 1 to 3 objects of K classes (default 6) on a textured background.

* **Bodies are (almost) class-agnostic**: polar-blob shapes and body colours come from the
  same distributions for every class, except that with probability ``body_hue_bias`` the
  body hue is drawn from a band around the class's own body hue (a weak, unreliable cue).
* **Discriminative parts**: every object carries up to ``num_parts`` class-specific parts of
  different strength, each meant to be enough alone to classify, each shown with its own
  probability (at least one is kept), placed apart inside the visible object:

  1. ``pattern`` -- the dominant cue (shown with p = 0.9): a high-contrast patch of the class
     texture (horizontal stripes for 'hstripe', a dot grid for 'dots', ...), 10-18 % of the
     object;
  2. ``spot`` -- a smaller (4-7 %) spot in the class's own hue (p = 0.6);
  3. ``faint`` -- a second patch of the class texture at low contrast, 5-10 % (p = 0.5).

  A classifier trained to convergence lights the dominant part most (calibration, 12 epochs:
  mean normalised CAM about 0.83 on it, 0.45 / 0.6 on the spot / faint parts, 0.4 on the rest
  of the body), so a plain CAM is partial, and methods that mine further regions (erasing,
  accumulation, attention) have the other parts (and the weak body cue) to find.  See
  ``bench/calibrate_synthetic.py``.
* **Context bias**: with probability ``p_context`` the background takes the context hue of
  one of the present classes (boats on water).
* **Saliency stand-in**: the object masks eroded/dilated, with missed regions, false alarms,
  blur and noise, like an off-the-shelf salient-object detector.

:func:`generate_sample` draws one image from ``numpy.random.default_rng([seed, split_id,
index])``; :func:`ensure_generated` writes a whole dataset once, in the VOC directory layout,
into a cache directory named after :meth:`SyntheticShapesConfig.fingerprint`.

Classes beyond 6 (up to :data:`MAX_CLASSES` = 8) use the patterns 'grid' and 'diamond' and
the context hues 255 and 345 of :data:`CONTEXT_HUES`; spot and body hues are spread evenly
over the hue circle for the chosen K (see :func:`spot_hue`, :func:`body_hue`).  The defaults
are calibrated for K = 6 at 96 px only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import synthetic_shapes_render as R
from .generator_config import (check_size_and_classes, config_fingerprint, config_to_dict,
                               freeze_sequences)
from .synthetic_shapes_cache import ensure_generated, default_cache_root  # noqa: F401 (public)

#: bump whenever the drawing code changes what a given config produces
GENERATOR_VERSION: int = 2

#: class names = the class texture geometry; the first ``num_classes`` are used
CLASS_NAMES: Tuple[str, ...] = tuple(R.PATTERNS)
MAX_CLASSES: int = len(CLASS_NAMES)

#: names of the discriminative part kinds; value ``k + 1`` in the ``parts`` map is kind ``k``
PART_NAMES: Tuple[str, ...] = ('pattern', 'spot', 'faint')

#: background context hue (degrees) per class: 'hstripe' on blue water, 'vstripe' on grass, ...
CONTEXT_HUES: Tuple[float, ...] = (215.0, 115.0, 30.0, 300.0, 175.0, 55.0, 255.0, 345.0)

SPLITS: Dict[str, int] = {'train': 0, 'val': 1}

Range = Tuple[float, float]


@dataclass(frozen=True)
class SyntheticShapesConfig:
    """Every knob of the generator.  Pixel sizes are for 96 px and scale with ``image_size``.

    Fractions of "the image" are of ``image_size**2``; fractions of "the object" are of the
    object's visible pixel count.  Lists given for tuple fields (e.g. from a config file) are
    converted to tuples.
    """
    image_size: int = 96
    num_classes: int = 6
    seed: int = 0
    num_train: int = 3000
    num_val: int = 500
    # objects and layout
    object_count_probs: Tuple[float, ...] = (0.45, 0.35, 0.20)   # P(1), P(2), P(3) objects
    object_area_ranges: Tuple[Range, ...] = ((0.15, 0.40), (0.10, 0.30), (0.10, 0.22))
    object_aspect_range: Range = (0.55, 1.0)
    shape_harmonic_max: float = 0.18       # amplitude of the cos(2t), cos(3t), cos(4t) terms
    max_overlap: float = 0.20              # of a new object that may lie on earlier ones
    max_occlusion: float = 0.30            # of an earlier object that a new one may cover
    min_in_frame: float = 0.06             # of the image, object area inside the frame
    min_visible: float = 0.07              # of the image, visible pixels every object keeps
    placement_tries: int = 40
    layout_restarts: int = 30
    # bodies (weakly class-specific)
    body_hue_bias: float = 0.1             # P(body hue from the class's own band)
    body_hue_band: float = 30.0            # half-width (deg) of that band
    body_sat_range: Range = (0.25, 0.85)
    body_val_range: Range = (0.45, 0.95)
    body_shading: float = 0.18
    body_gradient: float = 0.15
    # discriminative parts: per kind (pattern, spot, faint)
    num_parts: int = 3
    part_probs: Tuple[float, ...] = (0.9, 0.6, 0.5)
    part_area_ranges: Tuple[Range, ...] = ((0.10, 0.18), (0.04, 0.07), (0.05, 0.10))
    part_aspect_range: Range = (0.6, 1.0)
    pattern_period_range: Range = (4.0, 6.0)
    pattern_contrast: float = 0.45
    pattern_hue_spread: float = 60.0
    faint_contrast: float = 0.15
    faint_period_range: Range = (4.0, 6.0)
    spot_sat_range: Range = (0.7, 0.95)
    spot_val_range: Range = (0.8, 1.0)
    spot_hue_jitter: float = 8.0
    # background and context
    p_context: float = 0.6
    context_hue_jitter: float = 12.0
    context_sat_range: Range = (0.45, 0.8)
    context_val_range: Range = (0.35, 0.75)
    random_bg_sat_range: Range = (0.05, 0.6)
    random_bg_val_range: Range = (0.3, 0.8)
    bg_texture: float = 0.12
    pixel_noise: float = 0.03
    # saliency stand-in
    sal_max_morph: int = 3                 # erode/dilate radius drawn from -r..r px
    sal_p_miss: float = 0.3
    sal_miss_area: Range = (0.20, 0.45)    # of the object
    sal_confidence: Range = (0.65, 1.0)
    sal_p_false_alarm: float = 0.35
    sal_false_alarm_area: Range = (0.02, 0.07)   # of the image, per blob (1-2 blobs)
    sal_false_alarm_value: Range = (0.55, 0.9)
    sal_blur_sigma: Range = (1.5, 3.0)
    sal_smooth_noise: float = 0.12
    sal_pixel_noise: float = 0.03

    def __post_init__(self):
        freeze_sequences(self)
        self._validate()

    def _validate(self) -> None:
        """Raise ``ValueError`` naming the first inconsistent knob."""
        check_size_and_classes(self, MAX_CLASSES)
        if self.num_train < 0 or self.num_val < 0:
            raise ValueError('num_train and num_val must be >= 0')
        probs = self.object_count_probs
        if not 1 <= len(probs) <= 3 or abs(sum(probs) - 1.0) > 1e-6 or min(probs) < 0:
            raise ValueError(f'object_count_probs must be 1-3 probabilities summing to 1, '
                             f'got {probs}')
        if len(self.object_area_ranges) < len(probs):
            raise ValueError('object_area_ranges needs one range per object count')
        if not 1 <= self.num_parts <= len(PART_NAMES):
            raise ValueError(f'num_parts must lie in 1..{len(PART_NAMES)}, got {self.num_parts}')
        if len(self.part_probs) < self.num_parts or len(self.part_area_ranges) < self.num_parts:
            raise ValueError('part_probs and part_area_ranges need one entry per part kind')

    def to_dict(self) -> dict:
        """All fields as plain JSON-able values."""
        return config_to_dict(self)

    def fingerprint(self) -> str:
        """Short stable hash (12 hex digits) of all fields and :data:`GENERATOR_VERSION`."""
        return config_fingerprint(self, 'generator_version', GENERATOR_VERSION)

    def split_size(self, split: str) -> int:
        """Number of images of ``split`` ('train' or 'val')."""
        return {'train': self.num_train, 'val': self.num_val}[split]


# ----------------------------------------------------------------------------- class hues
def spot_hue(cfg: SyntheticShapesConfig, cls: int) -> float:
    """Mark hue of class ``cls`` (0-based): K hues evenly spread over the circle."""
    return 5.0 + 360.0 * cls / cfg.num_classes


def body_hue(cfg: SyntheticShapesConfig, cls: int) -> float:
    """Centre of the weakly preferred body hue band of class ``cls``: between two spot hues."""
    return spot_hue(cfg, cls) + 180.0 / cfg.num_classes + 180.0


# ----------------------------------------------------------------------------- layout
def _draw_blob(rng: np.random.Generator, cfg: SyntheticShapesConfig,
               area_range: Range) -> np.ndarray:
    """One random polar blob whose nominal area is drawn from ``area_range`` (of the image)."""
    size = cfg.image_size
    area = float(rng.uniform(*area_range)) * size * size
    aspect = float(rng.uniform(*cfg.object_aspect_range))
    theta = float(rng.uniform(0, math.pi))
    amps = rng.uniform(0, cfg.shape_harmonic_max, size=3)
    phases = rng.uniform(0, 2 * math.pi, size=3)
    radius = math.sqrt(area / (math.pi * aspect * R.blob_area_factor(amps)))
    lo, hi = 0.55 * radius, size - 0.55 * radius
    cy, cx = rng.uniform(lo, hi, size=2) if hi > lo else (size / 2.0, size / 2.0)
    return R.blob_mask(size, float(cy), float(cx), radius, aspect, theta, amps, phases)


def _acceptable(cfg: SyntheticShapesConfig, cand: np.ndarray,
                placed: Sequence[np.ndarray]) -> bool:
    """Placement rules: enough area in frame, limited overlap and limited occlusion."""
    area = int(cand.sum())
    if area < cfg.min_in_frame * cfg.image_size ** 2:
        return False
    if not placed:
        return True
    union = np.logical_or.reduce(placed)
    if (cand & union).sum() > cfg.max_overlap * area:
        return False
    return all((cand & m).sum() <= cfg.max_occlusion * m.sum() for m in placed)


def _instance_map(masks: Sequence[np.ndarray], size: int) -> np.ndarray:
    """uint8 map: 0 = background, i + 1 = object i (later objects occlude earlier ones)."""
    inst = np.zeros((size, size), np.uint8)
    for i, m in enumerate(masks):
        inst[m] = i + 1
    return inst


def _try_layout(rng, cfg, count: int) -> Optional[np.ndarray]:
    """Rejection-sample ``count`` objects; return the instance map or None on failure."""
    area_range = cfg.object_area_ranges[count - 1]
    masks: List[np.ndarray] = []
    for _ in range(count):
        for _ in range(cfg.placement_tries):
            cand = _draw_blob(rng, cfg, area_range)
            if _acceptable(cfg, cand, masks):
                masks.append(cand)
                break
        else:
            return None
    inst = _instance_map(masks, cfg.image_size)
    counts = np.bincount(inst.ravel(), minlength=count + 1)[1:]
    if counts.min() < cfg.min_visible * cfg.image_size ** 2:
        return None
    return inst


def sample_layout(rng: np.random.Generator, cfg: SyntheticShapesConfig
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """Draw the object count, distinct classes and a valid layout.

    Returns ``(classes, inst)``: 0-based classes in painting order and the instance map.
    When ``layout_restarts`` attempts fail, the last object is dropped and the layout
    retried (never below one object).
    """
    count = 1 + int(rng.choice(len(cfg.object_count_probs), p=cfg.object_count_probs))
    classes = rng.choice(cfg.num_classes, size=count, replace=False)
    for n in range(count, 0, -1):
        for _ in range(cfg.layout_restarts):
            inst = _try_layout(rng, cfg, n)
            if inst is not None:
                return classes[:n], inst
    raise RuntimeError('SyntheticShapes: no valid layout found; the object area and '
                       'visibility knobs are inconsistent')


# ----------------------------------------------------------------------------- painting
def _background(rng, cfg: SyntheticShapesConfig, context: int) -> np.ndarray:
    """Two-tone blotchy textured background, in the context hue of class ``context`` if >= 0."""
    size, scale = cfg.image_size, cfg.image_size / 96.0
    if context >= 0:
        hue = CONTEXT_HUES[context] + float(rng.uniform(-1, 1)) * cfg.context_hue_jitter
        sat = float(rng.uniform(*cfg.context_sat_range))
        val = float(rng.uniform(*cfg.context_val_range))
    else:
        hue = float(rng.uniform(0, 360))
        sat = float(rng.uniform(*cfg.random_bg_sat_range))
        val = float(rng.uniform(*cfg.random_bg_val_range))
    return R.two_tone_background(rng, size, (hue, sat, val), cfg.bg_texture, scale)


def _choose_context(rng, cfg: SyntheticShapesConfig, classes: np.ndarray) -> int:
    """With probability ``p_context`` one present class (uniformly) sets the background hue."""
    if rng.random() < cfg.p_context:
        return int(classes[rng.integers(len(classes))])
    return -1


def _body_colour(rng, cfg: SyntheticShapesConfig, cls: int) -> Tuple[float, float, float]:
    """Body HSV: hue uniform, or (with p = body_hue_bias) from the class's own hue band."""
    if rng.random() < cfg.body_hue_bias:
        hue = body_hue(cfg, cls) + float(rng.uniform(-1, 1)) * cfg.body_hue_band
    else:
        hue = float(rng.uniform(0, 360))
    return hue, float(rng.uniform(*cfg.body_sat_range)), float(rng.uniform(*cfg.body_val_range))


def _shown_parts(rng, cfg: SyntheticShapesConfig) -> List[int]:
    """Part kinds shown on one object: each with its probability; at least one (uniform)."""
    probs = np.asarray(cfg.part_probs[:cfg.num_parts])
    shown = np.nonzero(rng.random(cfg.num_parts) < probs)[0]
    if shown.size == 0:
        shown = np.array([rng.integers(cfg.num_parts)])
    return [int(k) for k in shown]


def _part_colour(rng, cfg, kind: int, cls: int, body_hsv) -> np.ndarray:
    """Paint colour of part ``kind``: contrast colours for textures, the class hue for spots."""
    if PART_NAMES[kind] == 'spot':
        hue = spot_hue(cfg, cls) + float(rng.uniform(-1, 1)) * cfg.spot_hue_jitter
        return R.hsv_to_rgb(hue, float(rng.uniform(*cfg.spot_sat_range)),
                            float(rng.uniform(*cfg.spot_val_range)))
    if PART_NAMES[kind] == 'pattern':
        return R.contrast_colour(rng, body_hsv, cfg.pattern_contrast, cfg.pattern_hue_spread)
    return R.contrast_colour(rng, body_hsv, cfg.faint_contrast, 20.0)


def _part_paint_mask(rng, cfg, kind: int, cls: int, region: np.ndarray) -> np.ndarray:
    """Pixels of ``region`` that take the part colour (the class texture, or all of a spot)."""
    if PART_NAMES[kind] == 'spot':
        return region
    scale = cfg.image_size / 96.0
    prange = cfg.pattern_period_range if PART_NAMES[kind] == 'pattern' else cfg.faint_period_range
    period = float(rng.uniform(*prange)) * scale
    phase = tuple(float(p) for p in rng.uniform(0, period, size=2))
    ys, xs = np.nonzero(region)
    centre = (float(ys.mean()), float(xs.mean())) if ys.size else (0.0, 0.0)
    pat = R.class_pattern(CLASS_NAMES[cls], cfg.image_size, period, phase, centre)
    return region & pat


def _paint_object(rng, cfg, img, parts, visible, cls: int, shading) -> None:
    """Paint one object's body and its shown parts into ``img`` and ``parts`` (in place).

    Colours are lit by the image's shading noise and a random linear illumination ramp.
    """
    size = cfg.image_size
    yy, xx = R.pixel_grid(size)
    body_hsv = _body_colour(rng, cfg, cls)
    g = float(rng.uniform(0, 2 * math.pi))
    ys, xs = np.nonzero(visible)
    ramp = ((xx[ys, xs] - size / 2) * math.cos(g) + (yy[ys, xs] - size / 2) * math.sin(g)) / size
    light = np.zeros((size, size), np.float32)
    light[ys, xs] = (1.0 + cfg.body_shading * shading[ys, xs]) * (1.0 + cfg.body_gradient * ramp)
    img[ys, xs] = R.hsv_to_rgb(*body_hsv) * light[ys, xs, None]
    taken = np.zeros_like(visible)
    obj_area = float(ys.size)
    for kind in _shown_parts(rng, cfg):
        area = float(rng.uniform(*cfg.part_area_ranges[kind])) * obj_area
        aspect = float(rng.uniform(*cfg.part_aspect_range))
        region = R.sample_part_region(rng, visible, taken, area, aspect)
        colour = _part_colour(rng, cfg, kind, cls, body_hsv)
        py, px = np.nonzero(_part_paint_mask(rng, cfg, kind, cls, region))
        img[py, px] = colour * light[py, px, None]
        taken |= region
        parts[region] = kind + 1


def _saliency(rng, cfg: SyntheticShapesConfig, inst: np.ndarray, count: int) -> np.ndarray:
    """Stand-in saliency map (uint8): per-object misses, false alarms, blur and noise."""
    size, scale = cfg.image_size, cfg.image_size / 96.0
    sal = np.zeros((size, size), np.float32)
    morph = int(round(cfg.sal_max_morph * scale))
    for i in range(count):
        obj = R.object_saliency(rng, inst == i + 1, morph, cfg.sal_p_miss, cfg.sal_miss_area,
                                cfg.sal_confidence)
        np.maximum(sal, obj, out=sal)
    if rng.random() < cfg.sal_p_false_alarm:
        fa = R.false_alarms(rng, size, int(rng.integers(1, 3)), cfg.sal_false_alarm_area,
                            cfg.sal_false_alarm_value)
        np.maximum(sal, fa, out=sal)
    sal = R.gaussian_blur(sal, float(rng.uniform(*cfg.sal_blur_sigma)) * scale)
    sal += cfg.sal_smooth_noise * R.smooth_noise(rng, size, 8 * scale)
    sal += cfg.sal_pixel_noise * rng.standard_normal((size, size)).astype(np.float32)
    return _to_uint8(sal)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# ----------------------------------------------------------------------------- sample
def generate_sample(cfg: SyntheticShapesConfig, split_id: int, index: int) -> dict:
    """One image, deterministic in ``(cfg, split_id, index)``.

    Uses ``numpy.random.default_rng([cfg.seed, split_id, index])`` (split_id 0 = train,
    1 = val).  Returns a dict with ``img`` uint8 (H, W, 3) RGB, ``mask`` uint8 (H, W)
    (0 background, 1..K), ``parts`` uint8 (H, W) (0 none, k = part kind ``PART_NAMES[k-1]``),
    ``saliency`` uint8 (H, W) in 0..255, ``labels`` uint8 (K,) multi-hot (derived from
    ``mask``) and ``context`` (0-based class whose context hue the background took, or -1).
    """
    rng = np.random.default_rng([cfg.seed, split_id, index])
    size = cfg.image_size
    classes, inst = sample_layout(rng, cfg)
    context = _choose_context(rng, cfg, classes)
    img = _background(rng, cfg, context)
    shading = R.smooth_noise(rng, size, 16 * size / 96.0)
    parts = np.zeros((size, size), np.uint8)
    for i, cls in enumerate(classes):
        _paint_object(rng, cfg, img, parts, inst == i + 1, int(cls), shading)
    img += cfg.pixel_noise * rng.standard_normal(img.shape).astype(np.float32)
    saliency = _saliency(rng, cfg, inst, len(classes))
    lut = np.concatenate([[0], np.asarray(classes) + 1]).astype(np.uint8)
    mask = lut[inst]
    labels = np.zeros(cfg.num_classes, np.uint8)
    labels[np.unique(mask[mask > 0]) - 1] = 1
    return dict(img=_to_uint8(img), mask=mask, parts=parts, saliency=saliency,
                labels=labels, context=context)
