"""Artifact files: atomic writes, CAM ``.npz``, palettised label PNGs, images, JSON.

Every writer goes through :func:`atomic_write`: the data lands in a temporary file in the
same directory and is renamed over the target, so an interrupted run never leaves a
half-written artifact under the final name, and a full disk stops the run with a
:class:`DiskFullError` naming the file.
"""
from __future__ import annotations

import contextlib
import errno
import functools
import io as _io
import json
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from .visualization.palette import voc_palette

IGNORE_INDEX = 255


class DataFileError(ValueError):
    """A data or artifact file is missing, unreadable or holds invalid values; names the file."""


class DiskFullError(OSError):
    """An artifact could not be written: no space left on the device (or the disk quota is
    used up).  The message names the file; files written before it are intact."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


#: errno values that mean "the disk is full"
DISK_FULL_ERRNOS = frozenset(e for e in (errno.ENOSPC, getattr(errno, 'EDQUOT', None)) if e)
TEMP_SUFFIX = '.tmp'


@contextlib.contextmanager
def atomic_write(path, mode: str = 'wb') -> Iterator:
    """Open a temporary file next to ``path``; rename it over ``path`` only on success.

    The temporary file ``.<name>.<writer>.<random>.tmp`` (``<writer>``: ``pid@host``) is
    removed on any error.  A process killed mid-write (SIGKILL, power loss) cannot remove
    it; the next write into that folder by another process on the same machine does
    (:func:`remove_stale_temp_files`, once per folder and process).  A full disk (``ENOSPC``
    / ``EDQUOT``, wherever it surfaces: creating, writing, flushing, syncing) raises
    :class:`DiskFullError` naming ``path``; the target is then untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _sweep_folder_once(path.parent)
        tmp, fh = _open_temp(path, mode)
    except OSError as exc:
        _raise_if_disk_full(exc, path)
        raise
    try:
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        _raise_if_disk_full(exc, path)
        raise


def _open_temp(path: Path, mode: str):
    """Create the temporary sibling of ``path`` (named after this writer) and open it:
    ``(temporary path, open file)``."""
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name[:120]}.{_writer_tag()}.',
                               suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        return tmp, os.fdopen(fd, mode)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise


def _raise_if_disk_full(exc: BaseException, path: Path) -> None:
    """Raise :class:`DiskFullError` for ``path`` if ``exc`` (or an exception it was raised
    from, e.g. torch.save's RuntimeError around the OSError) says the disk is full."""
    seen = set()
    cause: Optional[BaseException] = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, DiskFullError):
            return
        if isinstance(cause, OSError) and cause.errno in DISK_FULL_ERRNOS:
            raise DiskFullError(
                cause.errno,
                f'disk full: no space left on the device to write {path} '
                f'({os.strerror(cause.errno)}). Nothing was written under that name and the '
                'files written before it are intact: free some space (or choose another '
                '--work-dir) and run the same command again (add --resume to continue an '
                'interrupted training stage).', str(path)) from exc
        cause = cause.__cause__ or cause.__context__


# ----------------------------------------------------------------------------- stale temps
_TEMP_NAME = re.compile(r'^\..+\.(?P<pid>\d+)@(?P<host>[^@/]+)\.[A-Za-z0-9_]+\.tmp$')
_SWEPT: set = set()


def _writer_tag() -> str:
    """``pid@host`` of this process; ``host`` includes the pid namespace on Linux, so that a
    container sharing the host name is never taken for this machine."""
    return f'{os.getpid()}@{_host_tag()}'


@functools.lru_cache(maxsize=1)
def _host_tag() -> str:
    host = re.sub(r'[^A-Za-z0-9-]', '-', socket.gethostname()) or 'host'
    try:
        ns = os.readlink('/proc/self/ns/pid')          # 'pid:[4026531836]'
        host += '-' + re.sub(r'\D', '', ns)
    except OSError:
        pass
    return host


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:      # EPERM: it exists (another user's)
        return False
    return False


def remove_stale_temp_files(folder) -> list:
    """Remove the temporary files of :func:`atomic_write` in ``folder`` whose writer was a
    process of this machine that is gone (killed mid-write); return their paths.

    Files of live writers and of other machines (shared file systems) are left alone."""
    host = _host_tag()
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = _TEMP_NAME.match(name) if name.endswith(TEMP_SUFFIX) else None
        if match is None or match['host'] != host or not _process_gone(int(match['pid'])):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(folder, name))
            removed.append(os.path.join(folder, name))
    return removed


def _sweep_folder_once(folder: Path) -> None:
    key = (os.getpid(), os.fspath(folder))
    if key not in _SWEPT:
        _SWEPT.add(key)
        remove_stale_temp_files(folder)


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
    """Load ``(cams float32 (K, H, W), class_ids int (K,))`` written by :func:`save_cam`.

    Read with ``allow_pickle=False`` (an object array is refused, never unpickled).  A file
    that is not such a pair (``cams`` not real (K, H, W) or holding NaN, ``class_ids`` not
    K non-negative integers) is a :class:`DataFileError` naming it.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            cams, class_ids = data['cams'], data['class_ids']
    except FileNotFoundError:
        raise DataFileError(f'CAM file not found: {path}') from None
    except Exception as exc:  # zipfile/ValueError/KeyError on a corrupted file
        raise DataFileError(f'cannot read CAM file {path}: {exc}') from exc
    _check_cam_arrays(cams, class_ids, path)
    return cams.astype(np.float32), class_ids.astype(np.int64)


def _check_cam_arrays(cams: np.ndarray, class_ids: np.ndarray, path) -> None:
    if cams.dtype.kind not in 'fiu' or cams.ndim != 3:
        raise DataFileError(f'CAM file {path}: cams must be a real (K, H, W) array, got '
                            f'{cams.dtype} {cams.shape}')
    if class_ids.dtype.kind not in 'iu' or class_ids.ndim != 1 or class_ids.size != cams.shape[0]:
        raise DataFileError(f'CAM file {path}: class_ids must be {cams.shape[0]} integers (one '
                            f'per map), got {class_ids.dtype} {class_ids.shape}')
    if class_ids.size and class_ids.min() < 0:
        raise DataFileError(f'CAM file {path}: negative class id(s) {class_ids.tolist()}')
    if cams.dtype.kind == 'f' and np.isnan(cams).any():
        raise DataFileError(f'CAM file {path}: the maps hold NaN')


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

    16-bit index PNGs (modes I;16 / I) are read when every value lies in 0..255; a larger
    value is refused (it would wrap around in uint8).  Other modes (RGB colour masks, 1-bit,
    alpha, float) are refused with the mode named: a colour mask needs
    :func:`~wsss_core.datasets.label_formats.color_mask_to_index`, and a 1-bit PNG is what
    saving a palette-less mode-P image produces (every label turned into 0 or 1).
    With ``num_classes`` (foreground classes C), values outside 0..C and 255 are rejected
    with the offending values and the file named.
    """
    try:
        with Image.open(path) as img:
            if img.mode in ('P', 'L'):
                arr = np.array(img)
            elif img.mode in ('I', *_16BIT_MODES):
                arr = np.array(img).astype(np.int64)
            else:
                raise DataFileError(f'label file {path} has mode {img.mode}; expected an index '
                                    'PNG (mode P or L: one class index per pixel)')
    except FileNotFoundError:
        raise DataFileError(f'label file not found: {path}') from None
    except DataFileError:
        raise
    except Exception as exc:
        raise DataFileError(f'cannot read label file {path}: {exc}') from exc
    if arr.dtype != np.uint8 and arr.size and (arr.min() < 0 or arr.max() > 255):
        raise DataFileError(f'label file {path}: values {int(arr.min())}..{int(arr.max())} do '
                            'not fit an index map (0..255)')
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
_16BIT_MODES = ('I;16', 'I;16B', 'I;16L', 'I;16N')


def _gray_8bit(img: Image.Image, path, what: str) -> Optional[np.ndarray]:
    """A 16-bit grayscale image as uint8 ``v >> 8`` (as OpenCV reads it); None for 8-bit modes.

    Pillow's own conversion clips 16-bit values at 255 (a 0..65535 map turns almost all
    white), so it is not used.  32-bit integer and float images (modes I, F) have no agreed
    range and are refused.
    """
    if img.mode in _16BIT_MODES:
        return (np.asarray(img).astype(np.uint16) >> 8).astype(np.uint8)
    if img.mode in ('I', 'F'):
        raise DataFileError(f'{what} {path} has mode {img.mode} (32-bit integer or float '
                            'pixels, range unknown); save it as an 8-bit (or 16-bit) image')
    return None


def read_image(path) -> np.ndarray:
    """Read an image as RGB uint8 (H, W, 3).

    Grayscale, 1-bit, palette and CMYK images are converted by Pillow; alpha is dropped (not
    composited); 16-bit grayscale becomes ``v >> 8`` gray; 32-bit integer and float images
    are refused.  Truncated or corrupted files are a :class:`DataFileError` naming the file,
    never a partly grey image.
    """
    try:
        with Image.open(path) as img:
            img.load()
            gray = _gray_8bit(img, path, 'image')
            if gray is not None:
                return np.repeat(gray[:, :, None], 3, axis=2)
            if img.mode != 'RGB':
                img = img.convert('RGB')
            return np.asarray(img, dtype=np.uint8).copy()
    except FileNotFoundError:
        raise DataFileError(f'image not found: {path}') from None
    except DataFileError:
        raise
    except Exception as exc:
        raise DataFileError(f'cannot read image {path}: {exc}') from exc


def read_gray_png(path) -> np.ndarray:
    """Read an 8-bit grayscale map (e.g. saliency) as uint8 (H, W).

    Colour maps are converted to luminance by Pillow (alpha dropped); 16-bit maps become
    ``v >> 8``; 32-bit integer and float maps are refused (see :func:`read_image`).
    """
    try:
        with Image.open(path) as img:
            img.load()
            gray = _gray_8bit(img, path, 'map')
            if gray is not None:
                return gray
            return np.asarray(img.convert('L'), dtype=np.uint8).copy()
    except FileNotFoundError:
        raise DataFileError(f'file not found: {path}') from None
    except DataFileError:
        raise
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

