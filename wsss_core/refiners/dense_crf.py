"""Fully connected (dense) CRF on pydensecrf (Kraehenbuehl & Koltun, NIPS 2011).

Energy over a labelling ``x`` of the N pixels of an image ``I`` with L labels::

    E(x) = sum_i psi_u(x_i) + sum_{i<j} mu(x_i, x_j) k(f_i, f_j)

    k(f_i, f_j) = w_g  exp(-|p_i - p_j|^2 / (2 gauss_sxy^2))
                + w_b  exp(-|p_i - p_j|^2 / (2 bilat_sxy^2) - |I_i - I_j|^2 / (2 bilat_srgb^2))

with ``mu`` the Potts model, ``w_g = gauss_compat`` and ``w_b = bilat_compat``; ``iterations``
mean-field steps give the marginals ``Q (L, H, W)``.  Two unaries:

* from probabilities (:func:`dense_crf`):  ``psi_u(l) = -log(clip(P_l, 1e-5, 1))``; P need not
  sum to 1 over labels (psa feeds ``[bg, M_1..M_K]`` as is);
* from labels (:func:`dense_crf_labels`, irn's label CRF): the pixel's label gets probability
  ``gt_prob``, every other label ``(1 - gt_prob) / (L - 1)``; with ``zero_unsure`` the value 0
  means "unsure" (uniform ``1/L``) and labels 1..L stand for channels 0..L-1.

:data:`CRF_PRESETS` holds the published settings by name, a registry plugins fill
(:func:`register_crf_preset`; G = Gaussian (sxy, compat), B = bilateral (sxy, srgb, compat),
t = iterations).  The core registers psa G(3,3) B(80,13,10) t10 and irn's label CRF gt_prob
0.7 G(3,3) B(50,5,10) t10; the plugins register theirs when loaded: ``deeplab`` G(1,3)
B(67,3,4) t10 (plugin deeplab), ``getam`` G(3,3) B(83,5,4) t20 (plugin getam), ``edam``
psa's kernels with t3 (plugin edam).

``scale_factor`` (psa's ``crf_inference(..., scale_factor)``, kept by the psa and edam
presets) is for inputs downscaled by that factor: both spatial standard deviations are
divided by it, ``gauss_sxy / s`` and ``bilat_sxy / s`` (``bilat_srgb`` is a colour distance
and stays).  It defaults to 1, where nothing changes.  The refiner :class:`DenseCRF` builds the unary from a sample's CAMs
(background ``(1 - max_k M_k)^alpha`` or a constant) or from its current label.

pydensecrf is imported lazily (:func:`import_densecrf`); without it the error says to
``pip install pydensecrf2``.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from ..presets import PresetTable
from ..registry import LABEL_REFINERS
from .base import LabelRefiner

__all__ = ['CRFParams', 'CRF_PRESETS', 'register_crf_preset', 'crf_params', 'import_densecrf', 'probs_unary',
           'labels_unary', 'dense_crf', 'dense_crf_labels', 'cam_probs', 'DenseCRF']

IGNORE_INDEX = 255
INSTALL_HINT = 'pip install pydensecrf2'


def import_densecrf():
    """Return the ``pydensecrf.densecrf`` module, or raise an ImportError saying how to get it."""
    try:
        import pydensecrf.densecrf as dcrf
    except ImportError as exc:
        raise ImportError(
            'the dense CRF needs pydensecrf, which is not importable '
            f'({exc}). Install it with: {INSTALL_HINT}  (a maintained build of pydensecrf with '
            "wheels; it imports as 'pydensecrf')") from exc
    return dcrf


# ----------------------------------------------------------------------------- parameters
@dataclasses.dataclass(frozen=True)
class CRFParams:
    """Kernel parameters of one dense-CRF setting (see the module docstring).

    ``gt_prob`` is only used by the label unary; ``None`` means the preset does not define it.
    ``scale_factor`` divides both spatial standard deviations (see the module docstring).
    """

    gauss_sxy: float
    gauss_compat: float
    bilat_sxy: float
    bilat_srgb: float
    bilat_compat: float
    iterations: int
    gt_prob: Optional[float] = None
    scale_factor: float = 1.0

    def __post_init__(self):
        if not float(self.scale_factor) > 0:
            raise ValueError(f'dense CRF: scale_factor must be > 0, got {self.scale_factor}')

    def replace(self, **overrides) -> 'CRFParams':
        """A copy with some fields changed; an unknown name is a TypeError naming the fields."""
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise TypeError(f'unknown dense-CRF parameter(s) {unknown}; known: {sorted(fields)}')
        return dataclasses.replace(self, **overrides)

    def kernels(self) -> dict:
        """The keyword arguments of :func:`dense_crf` (everything but ``gt_prob``;
        ``scale_factor`` only where it is not 1)."""
        out = dataclasses.asdict(self)
        out.pop('gt_prob')
        if float(out['scale_factor']) == 1.0:
            out.pop('scale_factor')
        return out

    def label_kernels(self) -> dict:
        """The keyword arguments of :func:`dense_crf_labels`: :meth:`kernels` and ``gt_prob``."""
        return dict(self.kernels(), gt_prob=self.gt_prob)


#: the dense-CRF presets by name (a :class:`~wsss_core.presets.PresetTable`): the core's psa and
#: irn, and those of the loaded plugins
CRF_PRESETS: PresetTable[CRFParams] = PresetTable('dense-CRF preset')


def register_crf_preset(name: str, params: CRFParams, *, source: str) -> CRFParams:
    """Register ``params`` as the dense-CRF preset ``name`` on behalf of ``source`` (``'core'``
    or the plugin's name); a plugin calls it in a module its component table imports."""
    if not isinstance(params, CRFParams):
        raise TypeError(f'dense-CRF preset {name!r}: expected CRFParams, got {type(params).__name__}')
    return CRF_PRESETS.register(name, params, source=source)


# psa tool/imutils.crf_inference: unary from [bg, CAMs]; sxy 3 / scale_factor and
# 80 / scale_factor.
register_crf_preset('psa', CRFParams(gauss_sxy=3, gauss_compat=3, bilat_sxy=80, bilat_srgb=13,
                                     bilat_compat=10, iterations=10, scale_factor=1.0),
                    source='core')
# irn crf_inference_label for the IR labels: unary from labels, zero_unsure False.
register_crf_preset('irn', CRFParams(gauss_sxy=3, gauss_compat=3, bilat_sxy=50, bilat_srgb=5,
                                     bilat_compat=10, iterations=10, gt_prob=0.7),
                    source='core')


def crf_override_parameters() -> dict:
    """The keyword overrides a CRF refiner takes: every :class:`CRFParams` field (declared
    with the default None: the preset's value)."""
    return {f.name: None for f in dataclasses.fields(CRFParams)}


def crf_params(preset: Optional[str] = 'psa', **overrides) -> CRFParams:
    """The preset's parameters with ``overrides`` applied (``preset=None``: all given here).

    A name no loaded plugin registered is an :class:`~wsss_core.presets.UnknownPresetError`
    (a KeyError) naming the registered presets and the plugin to load."""
    if preset is None:
        return CRFParams(**overrides)
    return CRF_PRESETS[preset].replace(**overrides)


# ----------------------------------------------------------------------------- unaries
def probs_unary(probs: np.ndarray, clip: float = 1e-5) -> np.ndarray:
    """``-log(clip(P, clip, 1))`` as float32 ``(L, H*W)``, C-contiguous (pydensecrf's layout)."""
    probs = np.asarray(probs, dtype=np.float32)
    if not np.isfinite(probs).all():
        raise ValueError('dense CRF: the probabilities contain NaN or inf')
    u = -np.log(np.clip(probs, clip, 1.0))
    return np.ascontiguousarray(u.reshape(probs.shape[0], -1))


def labels_unary(label: np.ndarray, n_labels: int, gt_prob: float,
                 zero_unsure: bool = False) -> np.ndarray:
    """Unary from a label map, float32 ``(L, H*W)``.

    ``-log(gt_prob)`` for the pixel's label, ``-log((1 - gt_prob) / (L - 1))`` for the others;
    with ``zero_unsure`` label 0 is "unsure" (``-log(1/L)`` for all) and value ``v >= 1`` is
    channel ``v - 1``.  Values must lie in ``0..L-1`` (``0..L`` with ``zero_unsure``).
    """
    if not 0.0 < gt_prob < 1.0:
        raise ValueError(f'gt_prob must lie in (0, 1), got {gt_prob}')
    if n_labels < 2:
        raise ValueError(f'a label unary needs at least 2 labels, got {n_labels}')
    flat = np.asarray(label).reshape(-1).astype(np.int64)
    top = n_labels if zero_unsure else n_labels - 1
    if flat.size and (flat.min() < 0 or flat.max() > top):
        bad = np.unique(flat[(flat < 0) | (flat > top)])[:10].tolist()
        raise ValueError(f'label value(s) {bad} outside 0..{top} for a {n_labels}-label CRF'
                         f"{' with zero_unsure' if zero_unsure else ''}")
    unary = np.full((n_labels, flat.size), -np.log((1.0 - gt_prob) / (n_labels - 1)),
                    dtype=np.float32)
    channel = flat - 1 if zero_unsure else flat
    sure = channel >= 0
    unary[channel[sure], np.nonzero(sure)[0]] = -np.log(gt_prob)
    if zero_unsure:
        unary[:, ~sure] = -np.log(1.0 / n_labels)
    return unary


# ----------------------------------------------------------------------------- inference
def _check_img(img: np.ndarray, shape) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'dense CRF needs a uint8 (H, W, 3) image, got {img.dtype} {img.shape}')
    if img.shape[:2] != tuple(shape):
        raise ValueError(f'dense CRF: image is {img.shape[:2]}, unary is {tuple(shape)}')
    return np.ascontiguousarray(img)


def _infer(img: np.ndarray, unary: np.ndarray, gauss_sxy: float, gauss_compat: float,
           bilat_sxy: float, bilat_srgb: float, bilat_compat: float,
           iterations: int, scale_factor: float = 1.0) -> np.ndarray:
    """Mean-field inference; returns the marginals ``Q`` as float32 ``(L, H, W)``.
    Both spatial standard deviations are divided by ``scale_factor`` (psa's)."""
    if not float(scale_factor) > 0:
        raise ValueError(f'dense CRF: scale_factor must be > 0, got {scale_factor}')
    gauss_sxy, bilat_sxy = gauss_sxy / scale_factor, bilat_sxy / scale_factor
    dcrf = import_densecrf()
    h, w = img.shape[:2]
    n_labels = unary.shape[0]
    crf = dcrf.DenseCRF2D(w, h, n_labels)
    crf.setUnaryEnergy(unary)
    crf.addPairwiseGaussian(sxy=float(gauss_sxy), compat=float(gauss_compat))
    crf.addPairwiseBilateral(sxy=float(bilat_sxy), srgb=float(bilat_srgb), rgbim=img,
                             compat=float(bilat_compat))
    q = crf.inference(int(iterations))
    return np.asarray(q, dtype=np.float32).reshape(n_labels, h, w)


def dense_crf(img: np.ndarray, probs: np.ndarray, gauss_sxy: float = 3, gauss_compat: float = 3,
              bilat_sxy: float = 80, bilat_srgb: float = 13, bilat_compat: float = 10,
              iterations: int = 10, clip: float = 1e-5, scale_factor: float = 1.0) -> np.ndarray:
    """Dense CRF with the unary ``-log(clip(probs, clip, 1))``; defaults are psa's.

    Args:
        img: uint8 ``(H, W, 3)`` (RGB or BGR: the bilateral kernel only uses colour distances).
        probs: ``(L, H, W)`` scores in [0, 1], not necessarily normalised over labels.
        scale_factor: psa's: ``gauss_sxy`` and ``bilat_sxy`` are divided by it (for an
            input downscaled by that factor).

    Returns:
        The marginals ``Q``, float32 ``(L, H, W)``, summing to 1 over labels.
    """
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 3 or probs.shape[0] < 1:
        raise ValueError(f'probs must be (L, H, W) with L >= 1, got {probs.shape}')
    img = _check_img(img, probs.shape[1:])
    if probs.shape[0] == 1:
        return np.ones_like(probs)
    return _infer(img, probs_unary(probs, clip), gauss_sxy, gauss_compat, bilat_sxy,
                  bilat_srgb, bilat_compat, iterations, scale_factor)


def dense_crf_labels(img: np.ndarray, label: np.ndarray, n_labels: int, gt_prob: float = 0.7,
                     gauss_sxy: float = 3, gauss_compat: float = 3, bilat_sxy: float = 50,
                     bilat_srgb: float = 5, bilat_compat: float = 10, iterations: int = 10,
                     zero_unsure: bool = False, scale_factor: float = 1.0) -> np.ndarray:
    """Dense CRF with the label unary of :func:`labels_unary`; defaults are irn's.

    ``label`` is ``(H, W)`` with values in ``0..n_labels-1`` (``0..n_labels`` and 0 = unsure
    with ``zero_unsure``).  Returns the marginals ``Q``, float32 ``(n_labels, H, W)``; the
    refined label is ``Q.argmax(0)`` (``+ 1`` with ``zero_unsure``).
    """
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f'label must be (H, W), got {label.shape}')
    img = _check_img(img, label.shape)
    unary = labels_unary(label, n_labels, gt_prob, zero_unsure)
    return _infer(img, unary, gauss_sxy, gauss_compat, bilat_sxy, bilat_srgb, bilat_compat,
                  iterations, scale_factor)


# ----------------------------------------------------------------------------- CAMs -> probs
def cam_probs(cams: np.ndarray, bg: str = 'power', bg_power: float = 1.0,
              bg_score: float = 0.2) -> np.ndarray:
    """Stack ``[B, M_1, ..., M_K]`` ``(K+1, H, W)`` from normalised CAMs ``M`` (values in [0, 1]).

    ``bg='power'``: ``B = (1 - max_k M_k)^bg_power`` (psa: 4 "la", 32 "ha"; EDAM 1);
    ``bg='constant'``: ``B = bg_score`` everywhere (psa's CAM evaluation uses 0.2).
    CAM values are clipped to [0, 1] first; with K = 0, ``B = 1``.
    """
    cams = np.clip(np.asarray(cams, dtype=np.float32), 0.0, 1.0)
    if cams.ndim != 3:
        raise ValueError(f'cams must be (K, H, W), got {cams.shape}')
    if bg == 'power':
        cmax = cams.max(0) if cams.shape[0] else np.zeros(cams.shape[1:], np.float32)
        back = np.power(1.0 - cmax, float(bg_power), dtype=np.float32)
    elif bg == 'constant':
        back = np.full(cams.shape[1:], float(bg_score), dtype=np.float32)
    else:
        raise ValueError(f"bg must be 'power' or 'constant', not {bg!r}")
    return np.concatenate([back[None], cams], axis=0)


# ----------------------------------------------------------------------------- refiner
@LABEL_REFINERS.register_module()
class DenseCRF(LabelRefiner):
    """Dense-CRF refiner: CAMs or the current label -> ``label`` (0 = bg, c + 1, 255 ignore).

    ``unary='probs'`` (first in a chain, or replacing what came before): probabilities
    ``[B, M_1..M_K]`` from :func:`cam_probs` (``bg``, ``bg_power``, ``bg_score``), CRF, then
    ``label = 0`` where channel 0 wins and ``class_ids[i - 1] + 1`` where channel i wins.

    ``unary='labels'`` (after another refiner): the labels present, i.e. background, the image's
    classes and any other value in ``label`` except 255, become the CRF's channels; pixels at
    255 get a uniform ("unsure") unary.  ``ignore='keep'`` leaves them at 255 in the output,
    ``ignore='fill'`` lets the CRF label them.  ``gt_prob`` comes from the preset (irn: 0.7) or
    an override.

    ``keep_probs=True`` (probs unary only) also leaves the CRF marginals in the sample:
    ``sample['crf_probs']`` float32 ``(K+1, H, W)``, channel 0 the background and channel i
    the class ``class_ids[i - 1]``, for a following refiner (e.g. a saliency fusion of the
    CRF output).  An image without classes gets one all-ones background channel.

    Args:
        preset: a name in :data:`CRF_PRESETS` (the core's psa / irn, or a loaded plugin's),
            or None with every parameter given.
        unary: 'probs' or 'labels'.
        bg, bg_power, bg_score: background channel for the probs unary (see :func:`cam_probs`).
        ignore: 'keep' or 'fill' (labels unary only).
        keep_probs: keep the marginals as ``sample['crf_probs']`` (probs unary only).
        **overrides: any :class:`CRFParams` field, e.g. ``iterations=5`` or
            ``scale_factor=2`` (psa's, for inputs downscaled by 2).
    """

    needs = ('img',)
    #: what ``**overrides`` takes: the CRFParams fields (the preset gives their defaults)
    extra_parameters = staticmethod(crf_override_parameters)

    def __init__(self, preset: Optional[str] = 'psa', unary: str = 'probs', bg: str = 'power',
                 bg_power: float = 1.0, bg_score: float = 0.2, ignore: str = 'keep',
                 keep_probs: bool = False, **overrides):
        if unary not in ('probs', 'labels'):
            raise ValueError(f"unary must be 'probs' or 'labels', not {unary!r}")
        if bg not in ('power', 'constant'):
            raise ValueError(f"bg must be 'power' or 'constant', not {bg!r}")
        if ignore not in ('keep', 'fill'):
            raise ValueError(f"ignore must be 'keep' or 'fill', not {ignore!r}")
        if keep_probs and unary != 'probs':
            raise ValueError("keep_probs=True needs unary='probs' (the label unary's channels "
                             'are not [background] + class_ids)')
        self.params = crf_params(preset, **overrides)
        if unary == 'labels' and self.params.gt_prob is None:
            raise ValueError(f"the label unary needs gt_prob and preset {preset!r} has none: "
                             "pass gt_prob=0.7 (irn) or use preset='irn'")
        self.preset, self.unary, self.bg = preset, unary, bg
        self.bg_power, self.bg_score, self.ignore = float(bg_power), float(bg_score), ignore
        self.keep_probs = bool(keep_probs)

    def refine(self, sample: dict) -> dict:
        if self.unary == 'probs':
            q, values = self._from_cams(sample)
            sample['label'] = values[q.argmax(0)]
            if self.keep_probs:
                sample['crf_probs'] = q
        else:
            sample['label'] = self._from_label(sample)
        return sample

    def _from_cams(self, sample: dict):
        """``(Q (K+1, H, W), label value of each channel (K+1,) uint8)``."""
        img = sample['img']
        cams = np.asarray(sample['cams'], dtype=np.float32)
        class_ids = np.asarray(sample['class_ids'], dtype=np.int64).reshape(-1)
        if cams.ndim != 3 or cams.shape[0] != class_ids.size:
            raise ValueError(f"{sample.get('img_id')}: cams {cams.shape} do not match "
                             f'{class_ids.size} class ids')
        if cams.shape[1:] != img.shape[:2]:
            from ..evaluation.cam_labels import resize_cams
            cams = resize_cams(cams, img.shape[:2])
        values = np.concatenate([[0], class_ids + 1]).astype(np.uint8)
        if class_ids.size == 0:
            return np.ones((1,) + img.shape[:2], dtype=np.float32), values
        probs = cam_probs(cams, self.bg, self.bg_power, self.bg_score)
        try:
            return dense_crf(img, probs, **self.params.kernels()), values
        except ValueError as exc:
            raise ValueError(f"DenseCRF on image {sample.get('img_id')}: {exc} (its CAMs "
                             'hold NaN or inf: check the stage that made them)') from exc

    def _from_label(self, sample: dict) -> np.ndarray:
        label = sample.get('label')
        if label is None:
            raise KeyError(f"DenseCRF(unary='labels') needs a label from an earlier refiner "
                           f"for image {sample.get('img_id')}; put it after one, or use "
                           "unary='probs'")
        label = np.asarray(label)
        ignored = label == IGNORE_INDEX
        class_ids = np.asarray(sample.get('class_ids', ()), dtype=np.int64).reshape(-1)
        values = np.union1d(np.concatenate([[0], class_ids + 1]), np.unique(label[~ignored]))
        if values.size < 2:  # one label only: the CRF cannot change anything
            out = np.full(label.shape, values[0], dtype=np.uint8)
        else:
            # 0 = unsure (ignored pixels); channel i <-> values[i], stored as i + 1.
            index = np.zeros(label.shape, dtype=np.int64)
            index[~ignored] = np.searchsorted(values, label[~ignored]) + 1
            q = dense_crf_labels(sample['img'], index, values.size, zero_unsure=True,
                                 **self.params.label_kernels())
            out = values[q.argmax(0)].astype(np.uint8)
        if self.ignore == 'keep':
            out[ignored] = IGNORE_INDEX
        return out

    def __repr__(self) -> str:
        return (f'DenseCRF(preset={self.preset!r}, unary={self.unary!r}, bg={self.bg!r}, '
                f'bg_power={self.bg_power}, params={self.params})')

