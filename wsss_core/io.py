"""Artifact files: atomic writes, CAM ``.npz``, palettised label PNGs, images, JSON.

Every writer goes through :func:`atomic_write`: the data lands in a temporary file in the
same directory and is renamed over the target, so an interrupted run never leaves a
half-written artifact under the final name.
"""
from __future__ import annotations

import contextlib
import io as _io
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from .visualization.palette import voc_palette

IGNORE_INDEX = 255


class DataFileError(ValueError):
    """A data or artifact file is missing, unreadable or holds invalid values; names the file."""


@contextlib.contextmanager
def atomic_write(path, mode: str = 'wb') -> Iterator:
    """Open a temporary file next to ``path``; rename it over ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path, obj) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_write(path, 'w') as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, default=_json_default)
        fh.write('\n')


def read_json(path):
    with open(path) as fh:
        return json.load(fh)


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


# ----------------------------------------------------------------------------- CAMs
def save_cam(path, cams: np.ndarray, class_ids: Sequence[int], **extra) -> None:
    """Save CAMs of one image: ``cams`` (K, H, W) float, ``class_ids`` K 0-based foreground ids.

    Stored as compressed ``.npz`` with ``class_ids`` (int16) and ``cams`` (float16).
    """
    cams = np.asarray(cams, dtype=np.float16)
    class_ids = np.asarray(class_ids, dtype=np.int16).reshape(-1)
    if cams.ndim != 3 or cams.shape[0] != class_ids.size:
        raise ValueError(f'cams must be (K, H, W) with K = len(class_ids); got {cams.shape} '
                         f'and {class_ids.size} ids')
    buf = _io.BytesIO()
    np.savez_compressed(buf, cams=cams, class_ids=class_ids,
                        **{k: np.asarray(v) for k, v in extra.items()})
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())


def load_cam(path) -> Tuple[np.ndarray, np.ndarray]:
    """Load ``(cams float32 (K, H, W), class_ids int (K,))`` written by :func:`save_cam`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return data['cams'].astype(np.float32), data['class_ids'].astype(np.int64)
    except FileNotFoundError:
        raise DataFileError(f'CAM file not found: {path}') from None
    except Exception as exc:  # zipfile/ValueError/KeyError on a corrupted file
        raise DataFileError(f'cannot read CAM file {path}: {exc}') from exc


# ----------------------------------------------------------------------------- labels
def save_label_png(path, label: np.ndarray, palette: Optional[np.ndarray] = None) -> None:
    """Save a label map (0 = background, 1..C, 255 = ignore) as a palettised PNG.

    The palette is always written: Pillow saves a mode-P image without one as 1-bit.
    """
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f'label map must be 2-D, got shape {label.shape}')
    if label.dtype != np.uint8:
        if label.size and (label.min() < 0 or label.max() > 255):
            raise ValueError(f'label values must lie in 0..255 to be written to {path}')
        label = label.astype(np.uint8)
    img = Image.fromarray(label)  # mode L; putpalette turns it into mode P
    pal = voc_palette() if palette is None else np.asarray(palette, dtype=np.uint8)
    img.putpalette(pal.reshape(-1).tolist())
    buf = _io.BytesIO()
    img.save(buf, format='PNG')
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())


def read_label_png(path, num_classes: Optional[int] = None) -> np.ndarray:
    """Read a label PNG as a uint8 index map (palette indices for mode P, values for mode L).

    With ``num_classes`` (foreground classes C), values outside 0..C and 255 are rejected
    with the offending values and the file named.
    """
    try:
        with Image.open(path) as img:
            if img.mode in ('P', 'L'):
                arr = np.array(img)
            elif img.mode in ('I', 'I;16'):
                arr = np.array(img).astype(np.int64)
            else:
                raise DataFileError(f'label file {path} has mode {img.mode}; expected an index '
                                    'PNG (mode P or L)')
    except FileNotFoundError:
        raise DataFileError(f'label file not found: {path}') from None
    except DataFileError:
        raise
    except Exception as exc:
        raise DataFileError(f'cannot read label file {path}: {exc}') from exc
    if num_classes is not None:
        check_label_values(arr, num_classes, path)
    return arr.astype(np.uint8)


def check_label_values(label: np.ndarray, num_classes: int, source='label map') -> None:
    """Raise :class:`DataFileError` if ``label`` has a value outside 0..C and 255."""
    values = np.unique(label)
    bad = values[(values > num_classes) & (values != IGNORE_INDEX)]
    if bad.size:
        raise DataFileError(f'{source}: label value(s) {bad.tolist()} outside the class range '
                            f'0..{num_classes} (255 = ignore)')


# ----------------------------------------------------------------------------- images
def read_image(path) -> np.ndarray:
    """Read an image as RGB uint8 (H, W, 3); grayscale and CMYK are converted."""
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode != 'RGB':
                img = img.convert('RGB')
            return np.asarray(img, dtype=np.uint8).copy()
    except FileNotFoundError:
        raise DataFileError(f'image not found: {path}') from None
    except Exception as exc:
        raise DataFileError(f'cannot read image {path}: {exc}') from exc


def read_gray_png(path) -> np.ndarray:
    """Read an 8-bit grayscale map (e.g. saliency) as uint8 (H, W)."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert('L'), dtype=np.uint8).copy()
    except FileNotFoundError:
        raise DataFileError(f'file not found: {path}') from None
    except Exception as exc:
        raise DataFileError(f'cannot read {path}: {exc}') from exc


def save_gray_png(path, arr: np.ndarray) -> None:
    """Save a uint8 (H, W) map as an 8-bit grayscale PNG, atomically."""
    buf = _io.BytesIO()
    Image.fromarray(np.asarray(arr, dtype=np.uint8)).save(buf, format='PNG')
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())


def save_rgb_png(path, arr: np.ndarray) -> None:
    """Save a uint8 (H, W, 3) RGB image as PNG, atomically."""
    buf = _io.BytesIO()
    Image.fromarray(np.asarray(arr, dtype=np.uint8)).save(buf, format='PNG')
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())

