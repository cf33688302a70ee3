"""A dataset in the PASCAL VOC directory layout, the common form of every WSSS data set here.

::

    data_root/
      JPEGImages/<id>.jpg                 images (suffix configurable)
      SegmentationClass/<id>.png          index label PNGs (0 bg, 1..C, 255 ignore), optional
      ImageSets/Segmentation/<split>.txt  ids, one per line
      ImageSets/Segmentation/<split>_cls.txt   optional OAA-style labels: '<id> <c> [<c> ...]'
      saliency/<id>.png                   optional 8-bit saliency maps

Each sample is a dict: ``img`` (H, W, 3 uint8 RGB), ``img_id``, ``labels`` (C float32
multi-hot over the foreground classes) and, when present, ``gt_seg`` (H, W uint8) and
``saliency`` (H, W uint8); then the transform ``pipeline`` runs on it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from ..io import DataFileError, read_gray_png, read_image, read_label_png
from ..registry import DATASETS
from .label_formats import load_train_cls_txt, read_list
from .records import RecordsDataset
from .text_files import check_image_id
from .transforms import Compose

__all__ = ['SampleRecord', 'VOCLayoutDataset', 'check_image_id', 'read_id_list', 'read_cls_list',
           'check_same_size']


@dataclass(frozen=True)
class SampleRecord:
    """Where one sample's files are and its image-level labels (0-based foreground ids)."""
    img_id: str
    img_path: Path
    seg_path: Optional[Path]
    saliency_path: Optional[Path]
    class_ids: tuple


def read_id_list(list_file) -> List[str]:
    """Image ids of a list file in any form :func:`~.label_formats.read_list` reads.

    Plain ids, two-column deeplab/psa paths or OAA ``<id> <c> ...`` lines; UTF-8 (BOM
    allowed), LF or CRLF, blank lines skipped; an id listed twice or one that would leave the
    data root is a :class:`DataFileError` naming the file and line.
    """
    return read_list(list_file)


def read_cls_list(list_file, num_classes: int) -> dict:
    """Read OAA-style ``<id> <c> [<c> ...]`` lines as ``{id: sorted 0-based class ids}``.

    Same rules as :func:`~.label_formats.load_train_cls_txt` (classes in 0..C-1, each id
    once, errors name the file and line).
    """
    labels = load_train_cls_txt(list_file, num_classes)
    return {img_id: tuple(int(c) for c in np.flatnonzero(vec)) for img_id, vec in labels.items()}


def check_same_size(arr: np.ndarray, size, path, what: str) -> None:
    """Refuse a pixel map whose (H, W) differs from the image's, naming the file and both sizes.

    Resizing it would silently shift every label; a map of another size means the wrong file.
    """
    if tuple(arr.shape[:2]) != tuple(size):
        raise DataFileError(f"{path}: {what} size {tuple(arr.shape[:2])} (H, W) differs from "
                            f"the image's {tuple(size)}")


@DATASETS.register_module()
class VOCLayoutDataset(RecordsDataset):
    """Images with image-level labels (and optional masks/saliency) in the VOC layout.

    Args:
        data_root: the directory holding ``JPEGImages`` etc.
        split: list name under ``ImageSets/Segmentation`` (or give ``list_file``).
        num_classes: number of foreground classes C.
        class_names: C names; default ``class_1..class_C``.
        img_suffix / seg_suffix: file suffixes.
        saliency_dir: folder of saliency PNGs, or None.
        labels_from: 'auto' (``<split>_cls.txt`` if present, else the masks), 'cls_file' or 'masks'.
        pipeline: list of transform configs (TRANSFORMS) or callables.
        max_samples: keep only the first N ids (for quick runs).
    """

    def __init__(self, data_root, split: str = 'train', num_classes: int = 20,
                 class_names: Optional[Sequence[str]] = None, img_dir: str = 'JPEGImages',
                 img_suffix: str = '.jpg', seg_dir: Optional[str] = 'SegmentationClass',
                 seg_suffix: str = '.png', saliency_dir: Optional[str] = None,
                 list_file: Optional[str] = None, labels_from: str = 'auto',
                 pipeline: Optional[Sequence] = None, max_samples: Optional[int] = None,
                 load_gt: bool = True):
        self.data_root = Path(data_root).expanduser()
        if not self.data_root.is_dir():
            raise DataFileError(f'data root not found: {self.data_root}')
        self.split = split
        self.num_classes = int(num_classes)
        self.class_names = tuple(class_names) if class_names else tuple(
            f'class_{i + 1}' for i in range(self.num_classes))
        if len(self.class_names) != self.num_classes:
            raise ValueError(f'{len(self.class_names)} class names for {self.num_classes} classes')
        self.load_gt = load_gt
        list_path = Path(list_file) if list_file else (
            self.data_root / 'ImageSets' / 'Segmentation' / f'{split}.txt')
        ids = read_id_list(list_path)
        if max_samples is not None:
            ids = ids[:int(max_samples)]
        self.records = self._make_records(ids, list_path, img_dir, img_suffix, seg_dir,
                                          seg_suffix, saliency_dir, labels_from)
        self.pipeline = Compose(pipeline)

    # ------------------------------------------------------------------ records
    def _make_records(self, ids, list_path, img_dir, img_suffix, seg_dir, seg_suffix,
                      saliency_dir, labels_from) -> List[SampleRecord]:
        root = self.data_root
        cls_file = list_path.with_name(f'{list_path.stem}_cls.txt')
        if labels_from not in ('auto', 'cls_file', 'masks'):
            raise ValueError(f"labels_from must be 'auto', 'cls_file' or 'masks', not {labels_from!r}")
        use_cls = labels_from == 'cls_file' or (labels_from == 'auto' and cls_file.is_file())
        cls = read_cls_list(cls_file, self.num_classes) if use_cls else {}
        records = []
        for img_id in ids:
            seg = root / seg_dir / f'{img_id}{seg_suffix}' if seg_dir else None
            if seg is not None and not seg.is_file():
                seg = None
            sal = root / saliency_dir / f'{img_id}.png' if saliency_dir else None
            if use_cls:
                if img_id not in cls:
                    raise DataFileError(f'{cls_file}: no labels for image {img_id}')
                class_ids = cls[img_id]
            else:
                class_ids = self._labels_from_mask(img_id, seg)
            records.append(SampleRecord(img_id, root / img_dir / f'{img_id}{img_suffix}', seg,
                                        sal, class_ids))
        return records

    def _labels_from_mask(self, img_id, seg_path) -> tuple:
        if seg_path is None:
            raise DataFileError(f'image {img_id}: no label file and no mask to derive image '
                                f'labels from (looked for it under {self.data_root})')
        mask = read_label_png(seg_path, self.num_classes)
        return tuple(int(v) - 1 for v in np.unique(mask) if 0 < v <= self.num_classes)

    # ------------------------------------------------------------------ access
    def load_sample(self, index: int) -> dict:
        """The raw sample (before the pipeline)."""
        return read_record_sample(self, self.records[index])


def read_record_sample(dataset, rec: SampleRecord) -> dict:
    """The raw sample of one :class:`SampleRecord`: ``img_id``, ``img``, ``labels`` (the
    dataset's multi-hot vector), ``gt_seg`` (with ``dataset.load_gt`` and a mask) and
    ``saliency`` (with a map), each map checked to have the image's size."""
    sample = dict(img_id=rec.img_id, img=read_image(rec.img_path),
                  labels=dataset.labels_vector(rec.class_ids))
    size = sample['img'].shape[:2]
    if dataset.load_gt and rec.seg_path is not None:
        gt = read_label_png(rec.seg_path, dataset.num_classes)
        check_same_size(gt, size, rec.seg_path, 'mask')
        sample['gt_seg'] = gt
    if rec.saliency_path is not None:
        sal = read_gray_png(rec.saliency_path)
        check_same_size(sal, size, rec.saliency_path, 'saliency')
        sample['saliency'] = sal
    return sample
