"""MS COCO 2014 in the usual WSSS form: images + VOC-style index label PNGs, 80 classes.

The WSSS code bases convert COCO's instance annotations into one index PNG per image
(0 background, 1..80 the classes of :data:`COCO_CLASSES` in the standard order, 255 ignore)
and keep the VOC layout, either split into per-split folders or flat::

    coco2014/                                    data_root
      JPEGImages/train2014/COCO_train2014_000000000009.jpg      (or JPEGImages/<name>.jpg)
      JPEGImages/val2014/COCO_val2014_000000000042.jpg
      SegmentationClass/train2014/COCO_train2014_000000000009.png  (or SegmentationClass/<name>.png)
      SegmentationClass/val2014/...
      ImageSets/{train14,val14}.txt      ids ('COCO_train2014_000000000009'), or two-column
                                         '/JPEGImages/<name>.jpg /SegmentationClass/<name>.png'

Every folder name is configurable.  With ``split_subdir='auto'`` a folder that has a
``train2014``/``val2014`` subfolder is read nested (the subfolder is taken from the image
name ``COCO_<subfolder>_<number>`` where it says, else from the split), otherwise flat.
Image-level labels are derived from the masks (cached in the user cache directory, never in
the data root), or read from a ``cls_labels.npy``/``train_cls.txt`` of 80-vectors.
Masks that still hold COCO category ids (1..90 with gaps) can be converted with
:func:`category_ids_to_labels`.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple, Union

import numpy as np

from ..io import IGNORE_INDEX, DataFileError
from ..registry import DATASETS
from .class_names import COCO_CLASSES
from .voc12 import ListedSegmentationDataset


# The official (non-contiguous) COCO category id of each class above, in the same order.
COCO_CATEGORY_IDS: Tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
    27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77,
    78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90)

COCO_SPLITS: Tuple[str, ...] = ('train', 'val')
COCO_SPLIT_FOLDERS: Dict[str, str] = {'train': 'train2014', 'val': 'val2014', 'test': 'test2014'}
_SPLIT_ALIASES = {'train14': 'train', 'train2014': 'train', 'val14': 'val', 'val2014': 'val',
                  'test14': 'test', 'test2014': 'test'}
_NAME_FOLDER = re.compile(r'^COCO_([a-z]+\d{4})_\d+$')


def category_ids_to_labels(mask: np.ndarray, source='mask') -> np.ndarray:
    """Map a mask of COCO category ids (0 bg, 1..90 with gaps, 255) to labels 0..80, 255."""
    mask = np.asarray(mask)
    lut = np.full(256, -1, dtype=np.int16)
    lut[0], lut[IGNORE_INDEX] = 0, IGNORE_INDEX
    lut[list(COCO_CATEGORY_IDS)] = np.arange(1, len(COCO_CATEGORY_IDS) + 1)
    if mask.size and (mask.min() < 0 or mask.max() > 255):
        raise DataFileError(f'{source}: values outside 0..255')
    out = lut[mask.astype(np.int64)]
    bad = np.unique(mask[out < 0])
    if bad.size:
        raise DataFileError(f'{source}: value(s) {bad.tolist()} are not COCO category ids')
    return out.astype(np.uint8)


@DATASETS.register_module()
class COCO2014(ListedSegmentationDataset):
    """MS COCO 2014 with VOC-style label PNGs, 80 classes; see the module docstring.

    Args (beyond :class:`~.voc12.ListedSegmentationDataset`):
        split: 'train' or 'val' (also 'train14'/'train2014', 'val14'/'val2014'), or any
            list name found among :attr:`LIST_CANDIDATES`.
        seg_dir: mask folder (default ``'SegmentationClass'``).
        split_subdir: ``'auto'`` (see the module docstring), a folder name used for every
            image, a ``{split: folder}`` dict, or ``None`` for the flat layout.
    """

    CLASSES = COCO_CLASSES
    SPLITS = COCO_SPLITS
    LIST_CANDIDATES = ('ImageSets/{split}14.txt', 'ImageSets/{split}.txt',
                       'ImageSets/Segmentation/{split}.txt', 'ImageSets/{split}2014.txt')
    NAME = 'COCO2014'

    def __init__(self, data_root, split: str = 'train', *, seg_dir='SegmentationClass',
                 split_subdir: Union[str, Mapping, None] = 'auto', **kwargs):
        self.split_key = _SPLIT_ALIASES.get(split, split)
        self._subdir_option = split_subdir
        self._nested: Dict[Path, bool] = {}
        super().__init__(data_root, split=self.split_key, seg_dir=seg_dir, **kwargs)

    def default_seg_dir(self, split: str) -> Optional[str]:
        return 'SegmentationClass'

    def file_path(self, folder: Path, img_id: str, suffix: str) -> Path:
        sub = self._subfolder(folder, img_id)
        return (folder / sub if sub else folder) / f'{img_id}{suffix}'

    def _subfolder(self, folder: Path, img_id: str) -> Optional[str]:
        option = self._subdir_option
        if option is None:
            return None
        if isinstance(option, Mapping):
            return option.get(self.split_key)
        if option != 'auto':
            return str(option)
        if folder not in self._nested:
            self._nested[folder] = any((folder / f).is_dir() for f in COCO_SPLIT_FOLDERS.values())
        if not self._nested[folder]:
            return None
        named = _NAME_FOLDER.match(img_id)
        return named.group(1) if named else COCO_SPLIT_FOLDERS.get(self.split_key)
