"""WSOL data sets in the wsolevaluation metadata layout (CUB, ILSVRC, OpenImages)
(docs/wsol_evaluation.md#data-layout-wsolevaluation).

::

    <data_root>/dataset/<name>/<image_id>              images (image ids are relative paths)
    <data_root>/metadata/<name>/<split>/
        image_ids.txt          one image id per line
        class_labels.txt       <image_id>,<label>            (0-based integer class)
        image_sizes.txt        <image_id>,<w>,<h>            (optional; sizes of the boxes' frame)
        localization.txt       <image_id>,<x0>,<y0>,<x1>,<y1>  (one line per box), or
                               <image_id>,<mask png>,<ignore png>  (OpenImages: one line per
                               instance mask; the ignore png on the first line only)
        localization_masks.txt masks in the OpenImages form next to boxes (extension of this
                               framework, written by :func:`export_wsol_metadata`)
    <data_root>/metadata/<name>/class_names.txt   optional, one class name per line (extension)

Mask paths are relative to ``mask_root`` (default: the image root, as wsolevaluation's
OpenImages).  Each sample (the same contract as :class:`~.voc_layout.VOCLayoutDataset`, so
``TrainClassifier`` and ``MakeCAMs`` read it) holds ``img`` (H, W, 3 uint8 RGB), ``img_id``,
``labels`` (one-hot float32 over ``num_classes``), ``gt_label`` (int), ``ori_size`` ``(w, h)``
(from ``image_sizes.txt``, else the image's), ``gt_boxes`` (N, 4) float64 in original pixels
when the split has boxes, and with ``load_gt`` and masks ``gt_mask`` (union of the instance
masks, uint8 0/1) and ``ignore_mask`` (uint8 0/1, the raw ignore region).  The transform
``pipeline`` moves only ``img`` and the usual pixel maps: boxes and WSOL masks stay in the
original frame.

:func:`export_wsol_metadata` writes this layout from any VOC-layout segmentation dataset.
"""
from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..io import DataFileError, atomic_write, read_gray_png, read_image, save_gray_png
from ..registry import DATASETS
from ..datasets.records import RecordsDataset
from ..datasets.text_files import check_unique_ids, read_text_lines
from ..datasets.transforms import Compose

#: number of classes of the wsolevaluation data sets
KNOWN_NUM_CLASSES = {'CUB': 200, 'ILSVRC': 1000, 'OpenImages': 100}
#: connected components smaller than this (pixels) give no GT box in the export
MIN_COMPONENT_PIXELS = 16
MASKS_FILE = 'localization_masks.txt'
CLASS_NAMES_FILE = 'class_names.txt'


@dataclass(frozen=True)
class WSOLRecord:
    """One image of a WSOL split: files, label, original size, boxes, masks."""
    img_id: str
    img_path: Path
    class_id: int
    size: Optional[Tuple[int, int]] = None            # (w, h) from image_sizes.txt
    boxes: Tuple[Tuple[float, float, float, float], ...] = ()
    mask_paths: Tuple[Path, ...] = ()
    ignore_path: Optional[Path] = None
    seg_path: Optional[Path] = None                   # VOC-layout fields, never set here
    saliency_path: Optional[Path] = None

    @property
    def class_ids(self) -> tuple:
        return (self.class_id,)


# ----------------------------------------------------------------------------- parsing
def check_relative_path(value: str, where: str) -> None:
    """Refuse empty, absolute or parent-escaping relative paths in metadata files."""
    parts = value.replace('\\', '/').split('/')
    if (not value or value.startswith('/') or '\\' in value or '\x00' in value
            or '..' in parts or (len(value) > 1 and value[1] == ':')):
        raise DataFileError(f"{where}: entry '{value}' is not a relative path inside the data "
                            'root (absolute paths, backslashes and .. are refused)')


def _lines(path: Path):
    """(line number, text without surrounding spaces) of the non-blank lines of a metadata file.

    UTF-8 with or without BOM, LF or CRLF (:func:`~.text_files.read_text_lines`).
    """
    for lineno, line in read_text_lines(path, 'metadata file'):
        yield lineno, line.strip()


def _fields(path: Path, lineno: int, line: str, counts: Sequence[int], form: str) -> list:
    """The comma-separated fields of a line (spaces around each removed), the first checked
    as a relative path."""
    parts = [p.strip() for p in line.split(',')]
    if len(parts) not in counts:
        raise DataFileError(f'{path}:{lineno}: expected "{form}", got {line!r}')
    check_relative_path(parts[0], f'{path}:{lineno}')
    return parts


def _number(path: Path, lineno: int, text: str, kind=float):
    try:
        value = kind(text)
    except ValueError:
        raise DataFileError(f'{path}:{lineno}: {text!r} is not a valid '
                            f"{'integer' if kind is int else 'number'}") from None
    if not math.isfinite(value):
        raise DataFileError(f'{path}:{lineno}: {text!r} is not finite')
    return value


def read_image_ids(path: Path) -> List[str]:
    """The ids of ``image_ids.txt``; an id listed twice is an error naming it and both lines."""
    ids = []
    for lineno, line in _lines(path):
        check_relative_path(line, f'{path}:{lineno}')
        ids.append((line, lineno))
    check_unique_ids(ids, path)
    return [img_id for img_id, _ in ids]


def read_class_labels(path: Path) -> Dict[str, int]:
    labels: Dict[str, int] = {}
    for lineno, line in _lines(path):
        img_id, value = _fields(path, lineno, line, (2,), '<image_id>,<label>')
        label = _number(path, lineno, value.strip(), int)
        if label < 0:
            raise DataFileError(f'{path}:{lineno}: negative class label {label}')
        if labels.get(img_id, label) != label:
            raise DataFileError(f'{path}:{lineno}: image {img_id} has two labels')
        labels[img_id] = label
    return labels


def read_image_sizes(path: Path) -> Dict[str, Tuple[int, int]]:
    sizes = {}
    for lineno, line in _lines(path):
        img_id, w, h = _fields(path, lineno, line, (3,), '<image_id>,<w>,<h>')
        size = (_number(path, lineno, w.strip(), int), _number(path, lineno, h.strip(), int))
        if min(size) <= 0:
            raise DataFileError(f'{path}:{lineno}: image size must be positive, got {size}')
        if sizes.get(img_id, size) != size:
            raise DataFileError(f'{path}:{lineno}: image {img_id} has two sizes')
        sizes[img_id] = size
    return sizes


def read_localization(path: Path, mask_root: Path):
    """``(boxes, masks)``: per image id a list of boxes, and a (mask paths, ignore path) pair.

    A file holds either box lines (5 fields) or mask lines (3 fields), not both.
    """
    boxes: Dict[str, list] = {}
    masks: Dict[str, list] = {}
    form = None
    for lineno, line in _lines(path):
        parts = _fields(path, lineno, line, (3, 5),
                        '<image_id>,<x0>,<y0>,<x1>,<y1> or <image_id>,<mask png>,<ignore png>')
        kind = 'boxes' if len(parts) == 5 else 'masks'
        if form is not None and kind != form:
            raise DataFileError(f'{path}:{lineno}: a {kind[:-2]} line in a file of {form}; '
                                'boxes and masks go in separate files')
        form = kind
        img_id = parts[0]
        if kind == 'boxes':
            box = tuple(_number(path, lineno, v.strip()) for v in parts[1:])
            if box[2] < box[0] or box[3] < box[1]:
                raise DataFileError(f'{path}:{lineno}: box {box} is not x0 <= x1, y0 <= y1')
            boxes.setdefault(img_id, []).append(box)
            continue
        mask, ignore = parts[1].strip(), parts[2].strip()
        check_relative_path(mask, f'{path}:{lineno}')
        if img_id in masks:
            if ignore:
                raise DataFileError(f'{path}:{lineno}: the ignore mask of {img_id} must be on '
                                    'its first line only')
            masks[img_id][0].append(mask_root / mask)
        else:
            if ignore:
                check_relative_path(ignore, f'{path}:{lineno}')
            masks[img_id] = [[mask_root / mask], mask_root / ignore if ignore else None]
    return boxes, masks


# ----------------------------------------------------------------------------- dataset
@DATASETS.register_module()
class WSOLMetadata(RecordsDataset):
    """A split of a WSOL data set in the wsolevaluation metadata layout.

    Args:
        data_root: holds ``dataset/`` and ``metadata/`` (see the module docstring).
        name: the data set's folder name (``CUB``, ``ILSVRC``, ``OpenImages``, ...).
        split: ``train`` | ``val`` | ``test`` (or any folder under ``metadata/<name>``).
        image_root / metadata_root / mask_root: override ``<data_root>/dataset/<name>``,
            ``<data_root>/metadata`` and the image root.
        num_classes: default ``class_names.txt``'s length, the known count of CUB (200),
            ILSVRC (1000) and OpenImages (100), else 1 + the largest label over all splits.
        class_names: default ``class_names.txt`` or ``class_0 .. class_{C-1}``.
        ids_file: the id list (``image_ids_proxy.txt`` for ILSVRC's proxy train set).
        pipeline, max_samples, load_gt: as :class:`~.voc_layout.VOCLayoutDataset`.
    """

    def __init__(self, data_root, name: str, split: str = 'train', image_root=None,
                 metadata_root=None, mask_root=None, num_classes: Optional[int] = None,
                 class_names: Optional[Sequence[str]] = None, ids_file: str = 'image_ids.txt',
                 pipeline: Optional[Sequence] = None, max_samples: Optional[int] = None,
                 load_gt: bool = True):
        self.data_root = Path(data_root).expanduser()
        if not self.data_root.is_dir():
            raise DataFileError(f'data root not found: {self.data_root}')
        self.name, self.split, self.load_gt = name, split, load_gt
        self.image_root = Path(image_root) if image_root else self.data_root / 'dataset' / name
        self.metadata_root = (Path(metadata_root) if metadata_root
                              else self.data_root / 'metadata') / name
        self.mask_root = Path(mask_root) if mask_root else self.image_root
        split_dir = self.metadata_root / split
        if not split_dir.is_dir():
            raise DataFileError(f'no metadata for split {split!r} of {name}: {split_dir} is '
                                'not a directory')
        self.class_names = self._class_names(num_classes, class_names)
        self.num_classes = len(self.class_names)
        ids = read_image_ids(split_dir / ids_file)
        if max_samples is not None:
            ids = ids[:int(max_samples)]
        self.records = self._make_records(split_dir, ids)
        self.pipeline = Compose(pipeline)

    # ------------------------------------------------------------------ classes
    def _class_names(self, num_classes, class_names) -> tuple:
        names_file = self.metadata_root / CLASS_NAMES_FILE
        if class_names is None and names_file.is_file():
            class_names = [line.strip() for _, line in _lines(names_file)]
        if num_classes is None:
            num_classes = (len(class_names) if class_names else
                           KNOWN_NUM_CLASSES.get(self.name) or self._labels_in_all_splits())
        num_classes = int(num_classes)
        names = tuple(class_names) if class_names else tuple(
            f'class_{i}' for i in range(num_classes))
        if len(names) != num_classes:
            raise ValueError(f'{len(names)} class names for {num_classes} classes')
        return names

    def _labels_in_all_splits(self) -> int:
        files = sorted(self.metadata_root.glob('*/class_labels.txt'))
        top = max((max(read_class_labels(f).values(), default=-1) for f in files), default=-1)
        if top < 0:
            raise DataFileError(f'no class labels under {self.metadata_root}: give num_classes')
        return top + 1

    # ------------------------------------------------------------------ records
    def _make_records(self, split_dir: Path, ids: List[str]) -> List[WSOLRecord]:
        labels_file = split_dir / 'class_labels.txt'
        labels = read_class_labels(labels_file)
        sizes_file = split_dir / 'image_sizes.txt'
        sizes = read_image_sizes(sizes_file) if sizes_file.is_file() else {}
        boxes: dict = {}
        masks: dict = {}
        loc_file = split_dir / 'localization.txt'
        if loc_file.is_file():
            boxes, masks = read_localization(loc_file, self.mask_root)
        extra = split_dir / MASKS_FILE
        if extra.is_file():
            more_boxes, more_masks = read_localization(extra, self.mask_root)
            if more_boxes:
                raise DataFileError(f'{extra}: holds boxes; it is for masks only')
            masks.update(more_masks)
        records = []
        for img_id in ids:
            if img_id not in labels:
                raise DataFileError(f'{labels_file}: no class label for image {img_id}')
            label = labels[img_id]
            if label >= self.num_classes:
                raise DataFileError(f'{labels_file}: label {label} of {img_id} outside '
                                    f'0..{self.num_classes - 1}')
            if loc_file.is_file() and img_id not in boxes and img_id not in masks:
                raise DataFileError(f'{loc_file}: no localization for image {img_id}')
            mask_paths, ignore = masks.get(img_id, ((), None))
            records.append(WSOLRecord(
                img_id=img_id, img_path=self.image_root / img_id, class_id=label,
                size=sizes.get(img_id), boxes=tuple(boxes.get(img_id, ())),
                mask_paths=tuple(mask_paths), ignore_path=ignore))
        return records

    # ------------------------------------------------------------------ access
    def load_sample(self, index: int) -> dict:
        """The raw sample (before the pipeline); see the module docstring."""
        rec = self.records[index]
        img = read_image(rec.img_path)
        sample = dict(img_id=rec.img_id, img=img, labels=self.labels_vector(rec.class_ids),
                      gt_label=rec.class_id,
                      ori_size=rec.size or (img.shape[1], img.shape[0]))
        if rec.boxes:
            sample['gt_boxes'] = np.asarray(rec.boxes, dtype=np.float64).reshape(-1, 4)
        if self.load_gt and rec.mask_paths:
            sample['gt_mask'] = self._union_mask(rec)
            if rec.ignore_path is not None:
                sample['ignore_mask'] = (read_gray_png(rec.ignore_path) > 0).astype(np.uint8)
        return sample

    @staticmethod
    def _union_mask(rec: WSOLRecord) -> np.ndarray:
        union = None
        for path in rec.mask_paths:
            mask = read_gray_png(path) > 0
            if union is not None and mask.shape != union.shape:
                raise DataFileError(f'{path}: mask size {mask.shape} differs from the other '
                                    f'masks of {rec.img_id} ({union.shape})')
            union = mask if union is None else union | mask
        return union.astype(np.uint8)



# ----------------------------------------------------------------------------- export
def component_boxes(mask, min_pixels: int = MIN_COMPONENT_PIXELS) -> np.ndarray:
    """Inclusive boxes ``(x0, y0, x0 + w - 1, y0 + h - 1)`` of the 8-connected components
    of a binary mask with at least ``min_pixels`` pixels, (K, 4) int64."""
    mask = (np.asarray(mask) > 0).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    boxes = [(x, y, x + w - 1, y + h - 1) for x, y, w, h, area in stats[1:n]
             if area >= min_pixels]
    return np.asarray(boxes, dtype=np.int64).reshape(-1, 4)


def _place_image(src: Path, dst: Path, copy: bool) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() or dst.exists():
        dst.unlink()
    if copy:
        tmp = dst.with_name(f'.{dst.name}.tmp')
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    else:
        os.symlink(Path(src).resolve(), dst)


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    with atomic_write(path, 'w') as fh:
        fh.write(''.join(f'{line}\n' for line in lines))


def export_wsol_metadata(dataset, out_root, name: str, split: str,
                         min_component_pixels: int = MIN_COMPONENT_PIXELS,
                         copy: bool = False) -> dict:
    """Write ``dataset`` (VOC layout with masks) as a WSOL split under ``out_root``.

    Only images whose image-level label set has exactly one class are kept.  GT boxes are
    the inclusive bounding boxes of the 8-connected components of that class's mask with at
    least ``min_component_pixels`` pixels (an image with none is skipped).  For PxAP, the
    class mask (255 = foreground) and the ignore mask (255 where the label is 255) are
    written as PNGs and listed in ``localization_masks.txt``.  Images are symlinked
    (``copy=True``: copied).  Image ids are ``<split>/<file name>``.

    Returns counts: ``images`` kept, ``skipped_multi_class``, ``skipped_no_component``.
    """
    out_root = Path(out_root)
    image_root = out_root / 'dataset' / name
    meta = out_root / 'metadata' / name / split
    ids, labels, sizes, boxes, masks = [], [], [], [], []
    counts = dict(images=0, skipped_multi_class=0, skipped_no_component=0)
    for index, rec in enumerate(dataset.records):
        sample = dataset.load_sample(index)
        if 'gt_seg' not in sample:
            raise DataFileError(f'image {rec.img_id}: no segmentation mask to derive boxes from'
                                ' (the export needs a dataset with masks and load_gt=True)')
        present = np.flatnonzero(sample['labels'] > 0)
        if present.size != 1:
            counts['skipped_multi_class'] += 1
            continue
        cls = int(present[0])
        seg = sample['gt_seg']
        fg = seg == cls + 1
        found = component_boxes(fg, min_component_pixels)
        if found.shape[0] == 0:
            counts['skipped_no_component'] += 1
            continue
        img_id = f'{split}/{Path(rec.img_path).name}'
        stem = Path(rec.img_path).stem
        mask_rel = f'masks/{split}/{stem}.png'
        ignore_rel = f'masks/{split}/{stem}_ignore.png'
        _place_image(Path(rec.img_path), image_root / img_id, copy)
        save_gray_png(image_root / mask_rel, fg.astype(np.uint8) * 255)
        save_gray_png(image_root / ignore_rel, (seg == 255).astype(np.uint8) * 255)
        h, w = seg.shape
        ids.append(img_id)
        labels.append(f'{img_id},{cls}')
        sizes.append(f'{img_id},{w},{h}')
        boxes.extend(f'{img_id},{x0},{y0},{x1},{y1}' for x0, y0, x1, y1 in found.tolist())
        masks.append(f'{img_id},{mask_rel},{ignore_rel}')
        counts['images'] += 1
    _write_lines(meta / 'image_ids.txt', ids)
    _write_lines(meta / 'class_labels.txt', labels)
    _write_lines(meta / 'image_sizes.txt', sizes)
    _write_lines(meta / 'localization.txt', boxes)
    _write_lines(meta / MASKS_FILE, masks)
    _write_lines(out_root / 'metadata' / name / CLASS_NAMES_FILE, list(dataset.class_names))
    return counts
