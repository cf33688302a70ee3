"""Image-level label files and image lists of the WSSS code bases, and conversions between them.

In memory, image-level labels are a :data:`LabelDict`: ``{image id (str): float32 (C,) multi-hot}``
over the C foreground classes (VOC: 20, COCO: 80), in the file's order.  On disk:

``cls_labels.npy`` (psa, GETAM, irn, EDAM)
    A NumPy ``.npy`` holding a 0-d *object* array that wraps a pickled ``dict``.  psa's keys are
    ``str`` ids (``'2007_000032'``); irn's copy has integer keys with the underscore removed
    (``2007000032``: the first four digits are the year).  Both load to ``str`` ids.
``train_cls.txt`` (OAA, NSROM, L2G)
    One line per image: ``<id> <c> [<c> ...]`` with 0-based foreground class indices.
image lists
    Plain ids (``ImageSets/Segmentation/train.txt``, irn), the deeplab/psa two-column form
    ``/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png`` (one column for ``test``), or a
    ``train_cls.txt``-style line; :func:`read_list` detects the form per line.

Pickle: a ``cls_labels.npy`` can only be read with pickle (``np.load(..., allow_pickle=True)``).
Pickle can run code, so :func:`load_cls_labels_npy` is the *only* place that unpickles, it does
so only for the label file a user explicitly asked for, and it goes through a restricted
unpickler that admits nothing but NumPy arrays, dtypes and scalars (a file asking for any
other global is refused with :class:`~wsss_core.io.DataFileError`).  Images, masks and
artifacts are never unpickled.

Command line: ``python -m wsss_core.datasets.label_formats SRC DST`` (see :func:`main`).
"""
from __future__ import annotations

import argparse
import hashlib
import io as _io
import json
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..io import DataFileError, atomic_write, read_label_png
from .text_files import check_image_id, check_unique_ids, read_text_lines

LabelDict = Dict[str, np.ndarray]

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')
_IRN_KEY = re.compile(r'^\d{10}$')
_PSA_ID = re.compile(r'^(\d{4})_(\d{6})$')
_INT = re.compile(r'^-?[0-9]+$')   # ASCII digits only: str.isdigit() also admits '²', which int() refuses

__all__ = [
    'LabelDict', 'ListEntry', 'load_cls_labels_npy', 'save_cls_labels_npy',
    'load_train_cls_txt', 'save_train_cls_txt', 'load_label_file', 'labels_from_masks',
    'read_list', 'read_list_entries', 'write_id_list', 'write_two_column_list',
    'convert_labels', 'color_mask_to_index', 'irn_key_to_id', 'id_to_irn_key', 'main',
]


# ----------------------------------------------------------------------------- ids
def irn_key_to_id(key) -> str:
    """irn's integer key ``2007000032`` -> ``'2007_000032'``; other keys become plain ``str``."""
    text = str(int(key)) if isinstance(key, (int, np.integer)) else str(key)
    if _IRN_KEY.match(text):
        return f'{text[:4]}_{text[4:]}'
    return text


def id_to_irn_key(img_id: str) -> int:
    """``'2007_000032'`` -> ``2007000032`` (irn's key style); other ids are refused."""
    if not _PSA_ID.match(img_id):
        raise ValueError(f"image id {img_id!r} is not of the VOC form 'YYYY_NNNNNN'; irn-style "
                         'integer keys exist only for those')
    return int(img_id.replace('_', ''))


# ----------------------------------------------------------------------------- cls_labels.npy
class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that builds NumPy arrays, dtypes and scalars and refuses every other global."""

    _ALLOWED = {
        ('numpy', 'ndarray'), ('numpy', 'dtype'),
        ('numpy._core.multiarray', '_reconstruct'), ('numpy.core.multiarray', '_reconstruct'),
        ('numpy._core.multiarray', 'scalar'), ('numpy.core.multiarray', 'scalar'),
        ('numpy._core.numeric', '_frombuffer'), ('numpy.core.numeric', '_frombuffer'),
        ('_codecs', 'encode'),   # how protocol-2 pickles spell bytes
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f'global {module}.{name} is not allowed in a label file: it may hold only '
                'NumPy arrays, dtypes and scalars (unpickling anything else could run code).  '
                'If you trust the file, convert it once in a Python session: labels = '
                'np.load(path, allow_pickle=True).item(), then wsss_core.datasets.'
                'label_formats.save_cls_labels_npy(new_path, {id: vector}) or '
                'save_train_cls_txt')
        if module.startswith('numpy.core.'):   # files written by NumPy 1.x
            module = 'numpy._core.' + module[len('numpy.core.'):]
        return super().find_class(module, name)


def _unpickle_npy(path: Path):
    """Read a ``.npy`` file; object arrays go through :class:`_NumpyOnlyUnpickler`."""
    with open(path, 'rb') as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        if not dtype.hasobject:
            fh.seek(0)
            return np.load(fh, allow_pickle=False)
        return _NumpyOnlyUnpickler(fh, encoding='latin1').load()


def load_cls_labels_npy(path, num_classes: Optional[int] = None) -> LabelDict:
    """Load psa's or irn's ``cls_labels.npy`` as ``{id: float32 (C,)}`` (ids as ``str``).

    Equivalent to ``np.load(path, allow_pickle=True).item()`` followed by turning irn's
    integer keys back into ``'YYYY_NNNNNN'`` ids, but unpickled with a NumPy-only unpickler
    (see the module docstring).  With ``num_classes`` each vector's length is checked.
    """
    path = Path(path)
    try:
        obj = _unpickle_npy(path)
    except FileNotFoundError:
        raise DataFileError(f'label file not found: {path}') from None
    except Exception as exc:
        raise DataFileError(f'cannot read label file {path}: {exc}') from exc
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        obj = obj.item()
    if not isinstance(obj, dict):
        raise DataFileError(f'{path}: expected a pickled dict of image id -> label vector '
                            f'(psa/irn cls_labels.npy), found {type(obj).__name__}')
    out: LabelDict = {}
    for key, value in obj.items():
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, (str, int, np.integer)):
            raise DataFileError(f'{path}: key {key!r} ({type(key).__name__}) is not an image id '
                                '(psa: str, irn: integer)')
        img_id = irn_key_to_id(key)
        check_image_id(img_id, path)
        if img_id in out:
            raise DataFileError(f'{path}: image id {img_id} appears twice (as {key!r})')
        out[img_id] = _check_vector(value, num_classes, f'{path}: image {img_id}')
    _check_same_length(out, path)
    return out


def save_cls_labels_npy(path, labels: Mapping[str, np.ndarray], key_style: str = 'psa') -> None:
    """Write ``labels`` as a ``cls_labels.npy`` (atomically).

    ``key_style`` 'psa' keeps ``str`` ids; 'irn' writes ``np.int32`` keys without the
    underscore (only for VOC-style ``YYYY_NNNNNN`` ids).
    """
    if key_style not in ('psa', 'irn'):
        raise ValueError(f"key_style must be 'psa' or 'irn', not {key_style!r}")
    data = {}
    for img_id, vec in labels.items():
        key = np.int32(id_to_irn_key(img_id)) if key_style == 'irn' else str(img_id)
        data[key] = _check_vector(vec, None, f'image {img_id}')
    buf = _io.BytesIO()
    np.save(buf, np.array(data, dtype=object), allow_pickle=True)
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())


def _check_vector(value, num_classes: Optional[int], where: str) -> np.ndarray:
    try:
        vec = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise DataFileError(f'{where}: label vector is not numeric ({exc})') from None
    if vec.ndim != 1 or (num_classes is not None and vec.shape[0] != num_classes):
        want = f'({num_classes},)' if num_classes is not None else 'a 1-D vector'
        raise DataFileError(f'{where}: label vector has shape {vec.shape}, expected {want}')
    if not np.isin(vec, (0.0, 1.0)).all():
        raise DataFileError(f'{where}: label vector must be multi-hot 0/1, got {vec.tolist()}')
    return vec


def _check_same_length(labels: LabelDict, path) -> None:
    lengths = {v.shape[0] for v in labels.values()}
    if len(lengths) > 1:
        raise DataFileError(f'{path}: label vectors of different lengths {sorted(lengths)}')


# ----------------------------------------------------------------------------- train_cls.txt
def load_train_cls_txt(path, num_classes: int = 20) -> LabelDict:
    """Load OAA's ``<id> <c> [<c> ...]`` lines (0-based class indices) as a :data:`LabelDict`."""
    path = Path(path)
    out: LabelDict = {}
    for entry in read_list_entries(path):
        if entry.class_ids is None:
            raise DataFileError(f'{path}:{entry.lineno}: entry {entry.img_id!r} is not an '
                                "'<id> <c> [<c> ...]' line")
        bad = [c for c in entry.class_ids if not 0 <= c < num_classes]
        if bad:
            raise DataFileError(f'{path}: image {entry.img_id} (line {entry.lineno}): class '
                                f'index(es) {bad} outside 0..{num_classes - 1}')
        vec = np.zeros(num_classes, dtype=np.float32)
        vec[list(entry.class_ids)] = 1.0
        out[entry.img_id] = vec
    return out


def save_train_cls_txt(path, labels: Mapping[str, np.ndarray]) -> None:
    """Write ``labels`` as ``<id> <c> [<c> ...]`` lines (0-based, ascending), atomically."""
    lines = []
    for img_id, vec in labels.items():
        check_image_id(str(img_id), path)
        classes = np.flatnonzero(_check_vector(vec, None, f'image {img_id}') > 0)
        lines.append(' '.join([str(img_id)] + [str(int(c)) for c in classes]))
    _write_lines(path, lines)


def load_label_file(path, num_classes: int) -> LabelDict:
    """Load a label file by its suffix: ``.npy`` (psa/irn) or ``.txt`` (OAA)."""
    path = Path(path)
    if path.suffix == '.npy':
        return load_cls_labels_npy(path, num_classes)
    if path.suffix == '.txt':
        return load_train_cls_txt(path, num_classes)
    raise DataFileError(f"{path}: unknown label file type (expected a psa/irn '.npy' or an "
                        "OAA '.txt')")


# ----------------------------------------------------------------------------- masks
def labels_from_masks(mask_dir, ids: Iterable[str], num_classes: int, suffix: str = '.png',
                      cache_dir=None) -> LabelDict:
    """Image-level labels = the foreground classes present in each index mask.

    Mask values ``v`` in 1..C set class ``v - 1``; 0 (background) and 255 (ignore) set none;
    other values raise :class:`DataFileError` naming the mask.  With ``cache_dir``, results
    are kept in ``<cache_dir>/mask_labels/<hash of mask_dir>.json`` keyed by each mask's size
    and modification time, so a large set (COCO: 82k masks) is scanned once; the data
    directory itself is never written to.
    """
    mask_dir = Path(mask_dir)
    ids = list(ids)
    cache_file = _mask_cache_file(cache_dir, mask_dir, num_classes, suffix) if cache_dir else None
    cache = _read_mask_cache(cache_file) if cache_file else {}
    out: LabelDict = {}
    changed = False
    for img_id in ids:
        check_image_id(img_id, mask_dir)
        mask_path = mask_dir / f'{img_id}{suffix}'
        try:
            stat = mask_path.stat()
        except FileNotFoundError:
            raise DataFileError(f'mask not found: {mask_path} (needed to derive the image '
                                f'labels of {img_id})') from None
        stamp = [stat.st_mtime_ns, stat.st_size]
        hit = cache.get(img_id)
        if _valid_cache_entry(hit, stamp, num_classes):
            classes = hit[2]
        else:
            mask = read_label_png(mask_path, num_classes)
            classes = [int(v) - 1 for v in np.unique(mask) if 0 < v <= num_classes]
            cache[img_id] = stamp + [classes]
            changed = True
        vec = np.zeros(num_classes, dtype=np.float32)
        vec[classes] = 1.0
        out[img_id] = vec
    if cache_file and changed:
        _write_mask_cache(cache_file, mask_dir, cache)
    return out


def _valid_cache_entry(hit, stamp: list, num_classes: int) -> bool:
    """A cache entry ``[mtime_ns, size, [class ids]]`` for this very mask file and class range.

    Anything else (another version's layout, a hand-edited or damaged file) means: rescan.
    """
    return (isinstance(hit, list) and len(hit) == 3 and hit[:2] == stamp
            and isinstance(hit[2], list)
            and all(type(c) is int and 0 <= c < num_classes for c in hit[2]))


def _mask_cache_file(cache_dir, mask_dir: Path, num_classes: int, suffix: str) -> Path:
    key = f'{mask_dir.resolve()}|{num_classes}|{suffix}'
    digest = hashlib.sha1(key.encode('utf-8')).hexdigest()[:20]
    return Path(cache_dir).expanduser() / 'mask_labels' / f'{digest}.json'


def _read_mask_cache(cache_file: Path) -> dict:
    try:
        with open(cache_file, encoding='utf-8') as fh:
            entries = json.load(fh).get('entries', {})
        return entries if isinstance(entries, dict) else {}
    except (OSError, ValueError, AttributeError):
        return {}   # no cache yet, or a damaged one: rescan


def _write_mask_cache(cache_file: Path, mask_dir: Path, entries: dict) -> None:
    try:
        with atomic_write(cache_file, 'w') as fh:
            json.dump(dict(mask_dir=str(mask_dir.resolve()), entries=entries), fh)
    except OSError:
        pass   # a read-only cache only costs speed


def color_mask_to_index(rgb: np.ndarray, palette: Optional[np.ndarray] = None,
                        source='colour mask') -> np.ndarray:
    """Turn an (H, W, 3) colour-coded mask back into indices by exact palette lookup.

    ``palette`` is (N, 3) uint8 (default: the VOC palette, 256 entries).  A colour that is
    not in the palette raises :class:`DataFileError` naming ``source`` and the colour.
    """
    from ..visualization.palette import voc_palette
    pal = voc_palette(256) if palette is None else np.asarray(palette, dtype=np.uint8)
    rgb = np.asarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f'{source}: expected an (H, W, 3) colour mask, got shape {rgb.shape}')
    codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    pal_codes = (pal[:, 0].astype(np.int64) << 16) | (pal[:, 1].astype(np.int64) << 8) | pal[:, 2]
    lookup = {}
    for index in range(len(pal_codes) - 1, -1, -1):   # first index wins for repeated colours
        lookup[int(pal_codes[index])] = index
    uniq, inverse = np.unique(codes, return_inverse=True)
    missing = [int(c) for c in uniq if int(c) not in lookup]
    if missing:
        c = missing[0]
        raise DataFileError(f'{source}: colour {(c >> 16, (c >> 8) & 255, c & 255)} is not in '
                            f'the palette ({len(missing)} unknown colour(s))')
    return np.array([lookup[int(c)] for c in uniq], dtype=np.uint8)[inverse].reshape(codes.shape)


# ----------------------------------------------------------------------------- image lists
@dataclass(frozen=True)
class ListEntry:
    """One parsed list line: the id, the paths as written (two-column lists), OAA class ids,
    and the line number (for messages; not part of equality)."""
    img_id: str
    image: Optional[str] = None
    mask: Optional[str] = None
    class_ids: Optional[Tuple[int, ...]] = None
    lineno: int = field(default=0, compare=False)


def _id_from_path_token(token: str, where) -> str:
    """``/JPEGImages/2007_000032.jpg`` -> ``2007_000032``; refuse ``..`` and odd tokens."""
    if '\\' in token or '\x00' in token:
        raise DataFileError(f'{where}: entry {token!r} is not a plain image id or path; entries '
                            'with backslashes would point outside the data root')
    path = PurePosixPath(token)
    if '..' in path.parts:
        raise DataFileError(f'{where}: entry {token!r} contains ..; entries with path '
                            'separators or .. would point outside the data root')
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise DataFileError(f'{where}: entry {token!r} is not a plain image id or an image path '
                            f'ending in {"/".join(IMAGE_SUFFIXES)}; entries with path separators '
                            'would point outside the data root')
    img_id = path.stem
    check_image_id(img_id, where)
    return img_id


def _is_int(token: str) -> bool:
    return bool(_INT.match(token))


def parse_list_line(line: str, where) -> Optional[ListEntry]:
    """Parse one line of any supported list form; ``None`` for a blank line."""
    tokens = line.split()
    if not tokens:
        return None
    first = tokens[0]
    pathlike = '/' in first or PurePosixPath(first).suffix.lower() in IMAGE_SUFFIXES
    if len(tokens) > 1 and not pathlike and all(_is_int(t) for t in tokens[1:]):
        check_image_id(first, where)   # OAA '<id> <c> [<c> ...]'
        return ListEntry(first, class_ids=tuple(sorted({int(t) for t in tokens[1:]})))
    if len(tokens) > 2:
        raise DataFileError(f'{where}: cannot parse {line.strip()!r}: expected an id, '
                            "'<image> <mask>' or '<id> <c> [<c> ...]'")
    if not pathlike:
        if len(tokens) == 2:
            raise DataFileError(f'{where}: cannot parse {line.strip()!r}: expected an id, '
                                "'<image> <mask>' or '<id> <c> [<c> ...]'")
        check_image_id(first, where)
        return ListEntry(first)
    img_id = _id_from_path_token(first, where)
    if len(tokens) == 1:
        return ListEntry(img_id, image=first)
    mask_id = _id_from_path_token(tokens[1], where)
    if mask_id != img_id:
        raise DataFileError(f'{where}: image {first!r} and mask {tokens[1]!r} name different '
                            'images')
    return ListEntry(img_id, image=first, mask=tokens[1])


def read_list_entries(path) -> List[ListEntry]:
    """Parse every line of an image list (forms may not mix within a file).

    Lines are read by :func:`~.text_files.read_text_lines` (UTF-8 with or without BOM, LF or
    CRLF, blank lines skipped).  An id listed twice is a :class:`DataFileError` naming the id
    and both lines: a duplicate would silently weigh one image twice or, in a label file,
    leave it unclear which labels hold.
    """
    path = Path(path)
    entries, kinds = [], set()
    for lineno, line in read_text_lines(path, 'image list'):
        entry = parse_list_line(line, f'{path}:{lineno}')
        entry = ListEntry(entry.img_id, entry.image, entry.mask, entry.class_ids, lineno)
        kinds.add('cls' if entry.class_ids is not None else 'paths' if entry.image else 'ids')
        if len(kinds) > 1:
            raise DataFileError(f'{path}:{lineno}: list mixes forms ({" and ".join(sorted(kinds))})')
        entries.append(entry)
    check_unique_ids(((e.img_id, e.lineno) for e in entries), path)
    return entries


def read_list(path) -> List[str]:
    """Image ids of a list, whatever its form (plain ids, two-column paths, OAA class lines)."""
    return [e.img_id for e in read_list_entries(path)]


def write_id_list(path, ids: Sequence[str]) -> None:
    """Write plain ids, one per line with a trailing newline (LF), atomically."""
    for img_id in ids:
        check_image_id(img_id, path)
    _write_lines(path, list(ids))


def write_two_column_list(path, ids: Sequence[str], img_dir: str = 'JPEGImages',
                          seg_dir: Optional[str] = 'SegmentationClassAug',
                          img_suffix: str = '.jpg', seg_suffix: str = '.png') -> None:
    """Write the deeplab/psa form ``/<img_dir>/<id>.jpg /<seg_dir>/<id>.png``, atomically.

    ``seg_dir=None`` writes the one-column form used for the ``test`` split.
    """
    lines = []
    for img_id in ids:
        check_image_id(img_id, path)
        line = f'/{img_dir}/{img_id}{img_suffix}'
        if seg_dir is not None:
            line += f' /{seg_dir}/{img_id}{seg_suffix}'
        lines.append(line)
    _write_lines(path, lines)


def _write_lines(path, lines: Sequence[str]) -> None:
    with atomic_write(path, 'w') as fh:
        fh.write(''.join(f'{ln}\n' for ln in lines))


# ----------------------------------------------------------------------------- conversion
def convert_labels(src, dst, num_classes: Optional[int] = None, key_style: str = 'psa',
                   ids: Optional[Sequence[str]] = None) -> int:
    """Convert image-level labels between formats, chosen by suffix; returns the entry count.

    ``src``: a ``.npy`` (psa/irn), a ``.txt`` (OAA) or a directory of index masks (labels
    derived from the masks of ``ids``, default every ``*.png`` in it).  ``dst``: ``.npy``
    (written with ``key_style`` 'psa' or 'irn') or ``.txt``.  ``num_classes`` defaults to
    the vectors' length for ``.npy`` and to 20 (VOC) otherwise.
    """
    src, dst = Path(src), Path(dst)
    if dst.suffix not in ('.npy', '.txt'):
        raise DataFileError(f"{dst}: unknown output type (expected '.npy' or '.txt')")
    if src.is_dir():
        if ids is None:
            ids = sorted(p.stem for p in src.glob('*.png'))
        labels = labels_from_masks(src, ids, num_classes or 20)
    elif src.suffix == '.npy':
        labels = load_cls_labels_npy(src, num_classes)
    else:
        labels = load_label_file(src, num_classes or 20)
    if dst.suffix == '.npy':
        save_cls_labels_npy(dst, labels, key_style=key_style)
    else:
        save_train_cls_txt(dst, labels)
    return len(labels)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m wsss_core.datasets.label_formats SRC DST [--num-classes C] [--key-style irn]``."""
    parser = argparse.ArgumentParser(
        prog='python -m wsss_core.datasets.label_formats',
        description='Convert WSSS image-level label files: psa/irn cls_labels.npy <-> OAA '
                    'train_cls.txt, or derive them from a directory of index masks.')
    parser.add_argument('src', help='cls_labels.npy, train_cls.txt or a mask directory')
    parser.add_argument('dst', help='output .npy or .txt')
    parser.add_argument('--num-classes', type=int, default=None,
                        help='foreground classes (default: from the .npy, else 20)')
    parser.add_argument('--key-style', choices=('psa', 'irn'), default='psa',
                        help='key style of an output .npy (default psa: string ids)')
    parser.add_argument('--list', default=None,
                        help='image list selecting the masks when SRC is a directory')
    args = parser.parse_args(argv)
    ids = read_list(args.list) if args.list else None
    try:
        count = convert_labels(args.src, args.dst, args.num_classes, args.key_style, ids)
    except (DataFileError, ValueError) as exc:
        parser.exit(2, f'error: {exc}\n')
    print(f'wrote {count} entries to {args.dst}')
    return 0


if __name__ == '__main__':  # pragma: no cover
    raise SystemExit(main())
