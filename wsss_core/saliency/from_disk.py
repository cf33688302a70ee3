"""Saliency maps stored on disk: ``<root>/<img_id><suffix>``, 8-bit grayscale, 0..255.

This is how OAA, NSROM, EDAM and GETAM get saliency: maps made offline by a learned
salient-object detector (DSS, PoolNet, ...) and shipped as PNGs the size of the JPEGs.
A map of another size is resized bilinearly to the image; the first such file is logged
as a warning, later ones are counted (``resized``) and the count is logged at 10, 100, ...
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..io import DataFileError, read_gray_png
from ..registry import SALIENCY_SOURCES
from .base import SaliencySource

logger = logging.getLogger(__name__)


def resize_map(sal: np.ndarray, shape) -> np.ndarray:
    """Bilinear resize of a uint8 (h, w) map to ``shape`` = (H, W) (half-pixel centres)."""
    import cv2

    h, w = int(shape[0]), int(shape[1])
    return cv2.resize(sal, (w, h), interpolation=cv2.INTER_LINEAR)


@SALIENCY_SOURCES.register_module()
class SaliencyFromDisk(SaliencySource):
    """Read ``root/<img_id><suffix>``; a missing or unreadable file is a DataFileError naming it.

    Args:
        root: folder of the maps (``~`` expanded; a relative path is relative to the
            working directory).
        suffix: file suffix, '.png' by default.
    """

    needs = ('img',)

    def __init__(self, root, suffix: str = '.png'):
        self.root = Path(root).expanduser()
        self.suffix = suffix
        self.resized = 0

    def path(self, img_id: str) -> Path:
        if (not img_id or '/' in img_id or '\\' in img_id or '\x00' in img_id
                or img_id in ('.', '..')):
            raise DataFileError(f'saliency: {img_id!r} is not a plain image id (separators, '
                                'NUL and .. would leave the saliency root)')
        return self.root / f'{img_id}{self.suffix}'

    def __call__(self, img_id: str, img: np.ndarray) -> np.ndarray:
        path = self.path(img_id)
        if not path.is_file():
            raise DataFileError(f'saliency map not found: {path} (image {img_id}, '
                                f'SaliencyFromDisk root {self.root})')
        sal = read_gray_png(path)
        shape = tuple(np.asarray(img).shape[:2])
        if sal.shape != shape:
            self._count_resized(path, sal.shape, shape)
            sal = resize_map(sal, shape)
        return sal

    def _count_resized(self, path: Path, old, new) -> None:
        self.resized += 1
        if self.resized == 1:
            logger.warning('saliency map %s is %dx%d (HxW) but its image is %dx%d: resized '
                           'bilinearly; further resized maps are only counted', path,
                           *old, *new)
        elif str(self.resized).rstrip('0') == '1':  # 10, 100, 1000, ...
            logger.warning('%d saliency maps under %s did not match their image size and '
                           'were resized', self.resized, self.root)

    def __repr__(self) -> str:
        return f'SaliencyFromDisk(root={str(self.root)!r}, suffix={self.suffix!r})'
