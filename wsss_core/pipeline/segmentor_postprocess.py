"""Per-image post-processing of TestSegmentor: stored scores -> probabilities -> (CRF) -> PNG.

For one image with stored scores ``y`` (K, h, w) at the output stride
(``docs/methods/deeplab.md`` §4.6-4.7):

    P = softmax_k(bilinear(y, H x W))           (align_corners=False semantics)
    raw = argmax_k P
    crf = argmax_k Q,   Q = DenseCRF(I, P)      (unary -log max(P, 1e-5); deeplab preset:
                                                 Gaussian sxy 1 w 3, bilateral sxy 67 srgb 3
                                                 w 4, 10 mean-field iterations)

``I`` is the raw RGB image (``crf_image='raw_rgb'``, the fixed mode) or, to reproduce the
published numbers' quirk, the mean-subtracted BGR image cast to uint8 with wrap-around
(``'mean_subtracted_bgr'``: ``(I_bgr - m) mod 256``, truncated towards zero first).

:class:`PostprocessJob` does this for a dataset index, writes ``predictions/<id>.png`` (and
``predictions_raw/<id>.png`` when a CRF runs) atomically and returns the confusion matrices
against the ground truth; it is picklable, so ``map_images`` can spread it over processes.
Images whose PNGs exist are read back instead of recomputed (resume).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from ..evaluation.confusion import confusion_matrix
from ..io import read_label_png, save_label_png
from ..models.data_preprocessor import CAFFE_BGR_MEAN
from ..refiners.dense_crf import CRFParams, dense_crf

__all__ = ['CRF_IMAGES', 'save_logits', 'load_logits', 'upsampled_probs', 'crf_image',
           'PostprocessJob']

CRF_IMAGES = ('raw_rgb', 'mean_subtracted_bgr')


#: float16's largest finite value: a score of larger magnitude would be stored as inf
FLOAT16_MAX = float(np.finfo(np.float16).max)


def storage_dtype(logits: np.ndarray):
    """float16 when every score's magnitude is below :data:`FLOAT16_MAX` (half the disk),
    else float32, so that a large but finite score is never stored as inf (scores that are
    already NaN or inf are kept as they are, for the CRF's check to name)."""
    fits = logits.size == 0 or bool(np.abs(logits).max() < FLOAT16_MAX)
    return np.float16 if fits else np.float32


def save_logits(path, logits: np.ndarray, image_size) -> None:
    """Store scores (K, h, w) with the image size, atomically, in :func:`storage_dtype`."""
    import io

    from wsss_core.io import atomic_write
    logits = np.asarray(logits, dtype=np.float32)
    buf = io.BytesIO()
    np.savez_compressed(buf, logits=logits.astype(storage_dtype(logits)),
                        image_size=np.asarray(image_size, dtype=np.int64))
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())


def load_logits(path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as data:
        return data['logits'].astype(np.float32)


def upsampled_probs(logits: np.ndarray, size) -> np.ndarray:
    """``softmax(bilinear(logits, size))`` as float32 (K, H, W)."""
    h, w = int(size[0]), int(size[1])
    hwk = np.ascontiguousarray(logits.transpose(1, 2, 0))
    up = cv2.resize(hwk, (w, h), interpolation=cv2.INTER_LINEAR)
    if up.ndim == 2:  # a single class
        up = up[..., None]
    up = up.transpose(2, 0, 1)
    up = up - up.max(axis=0, keepdims=True)
    np.exp(up, out=up)
    up /= up.sum(axis=0, keepdims=True)
    return up.astype(np.float32)


def crf_image(img_rgb: np.ndarray, mode: str) -> np.ndarray:
    """The uint8 image the CRF's bilateral kernel sees (see the module docstring)."""
    if mode == 'raw_rgb':
        return np.ascontiguousarray(img_rgb)
    if mode == 'mean_subtracted_bgr':
        bgr = img_rgb[..., ::-1].astype(np.float32) - np.asarray(CAFFE_BGR_MEAN, np.float32)
        return np.ascontiguousarray((np.trunc(bgr).astype(np.int64) & 255).astype(np.uint8))
    raise ValueError(f'crf_image must be one of {CRF_IMAGES}, not {mode!r}')


class PostprocessJob:
    """One image: scores -> predictions (+ CRF) -> PNGs and confusion matrices.

    Called with a dataset index; returns ``(img_id, conf_raw, conf_crf)`` where the
    matrices are ``(K, K)`` int64 (None without ground truth; ``conf_crf`` None without CRF).
    """

    def __init__(self, dataset, logits_dir, out_dir, raw_dir: Optional[Path],
                 num_labels: int, crf: Optional[CRFParams] = None, crf_mode: str = 'raw_rgb'):
        self.dataset = dataset
        self.logits_dir = Path(logits_dir)
        self.out_dir = Path(out_dir)
        self.raw_dir = Path(raw_dir) if raw_dir is not None else None
        self.num_labels = int(num_labels)
        self.crf = crf
        self.crf_mode = crf_mode
        if crf is not None and self.raw_dir is None:
            raise ValueError('with a CRF the raw predictions need their own folder (raw_dir)')

    def item_name(self, index: int) -> str:
        """How worker errors (e.g. a killed CRF worker) name dataset item ``index``."""
        return f'image {self.dataset.records[index].img_id}'

    def _predict(self, sample: dict):
        logits = load_logits(self.logits_dir / f"{sample['img_id']}.npz")
        probs = upsampled_probs(logits, sample['img'].shape[:2])
        raw = probs.argmax(0).astype(np.uint8)
        refined = None
        if self.crf is not None:
            try:
                q = dense_crf(crf_image(sample['img'], self.crf_mode), probs,
                              **self.crf.kernels())
            except ValueError as exc:
                raise ValueError(f"CRF of image {sample['img_id']}: {exc} (its segmenter "
                                 'scores hold NaN or inf)') from exc
            refined = q.argmax(0).astype(np.uint8)
        return raw, refined

    def __call__(self, index: int):
        sample = self.dataset.load_sample(index)
        img_id = sample['img_id']
        final_path = self.out_dir / f'{img_id}.png'
        raw_path = self.raw_dir / f'{img_id}.png' if self.raw_dir is not None else None
        done = final_path.is_file() and (raw_path is None or raw_path.is_file())
        if done:
            final = read_label_png(final_path)
            raw = read_label_png(raw_path) if raw_path is not None else final
        else:
            raw, refined = self._predict(sample)
            final = refined if refined is not None else raw
            if raw_path is not None:
                save_label_png(raw_path, raw)
            save_label_png(final_path, final)
        gt = sample.get('gt_seg')
        if gt is None:
            return img_id, None, None
        conf_raw = confusion_matrix(raw, gt, self.num_labels)
        conf_crf = confusion_matrix(final, gt, self.num_labels) if self.crf is not None else None
        return img_id, conf_raw, conf_crf
