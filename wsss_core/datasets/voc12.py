"""PASCAL VOC 2012 with the SBD ``train_aug`` split, as the WSSS code bases lay it out.

::

    VOCdevkit/VOC2012/                          data_root
      JPEGImages/<id>.jpg
      SegmentationClass/<id>.png                official masks (train + val, 2913)
      SegmentationClassAug/<id>.png             SBD-converted masks (train_aug + val, 12031)
      ImageSets/Segmentation/{train,val,test,trainval,train_aug,...}.txt
      ImageSets/SegmentationAug/{train_aug,trainval_aug,...}.txt     (deeplab-pytorch)
      saliency_aug/<id>.png                     saliency maps (OAA / NSROM), optional

Lists may hold plain ids (VOC, irn), the deeplab/psa two-column form
``/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png`` (one column for ``test``), or OAA's
``<id> <c> ...`` lines; only the id is taken from a line, files are looked up in the
configured directories.  Image-level labels come from the masks, from psa/irn's
``cls_labels.npy`` or from OAA's ``train_cls.txt`` (see :mod:`.label_formats`).  Masks are
index PNGs, palettised (VOC palette) or plain 8-bit: 0 background, 1..20 the classes of
:data:`VOC_CLASSES`, 255 ignore.

:class:`ListedSegmentationDataset` is the engine shared with :class:`~.coco14.COCO2014`.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..io import DataFileError, read_label_png
from ..registry import DATASETS
from .transforms import Compose
from .class_names import VOC_CLASSES
from ..visualization.palette import voc_palette
from .label_formats import labels_from_masks, load_label_file, read_list
from .voc_layout import SampleRecord, VOCLayoutDataset, check_same_size

VOC_SPLITS: Tuple[str, ...] = ('train', 'val', 'test', 'train_aug', 'trainval', 'trainval_aug')
LABEL_SOURCES: Tuple[str, ...] = ('auto', 'masks', 'cls_labels_npy', 'train_cls_txt', 'none')

PathLike = Union[str, Path]


@dataclass(frozen=True)
class ListedRecord(SampleRecord):
    """A :class:`SampleRecord` plus the pseudo label's path and whether labels are known."""
    pseudo_path: Optional[Path] = None
    has_labels: bool = True


class ListedSegmentationDataset(VOCLayoutDataset):
    """Images named by a list file, with masks, image labels, saliency and pseudo labels.

    Subclasses set :attr:`CLASSES`, :attr:`SPLITS` and :attr:`LIST_CANDIDATES` and may
    override :meth:`default_seg_dir` and :meth:`file_path`.  Samples follow
    :class:`VOCLayoutDataset`: ``img``, ``img_id``, ``labels`` (C float32), ``gt_seg`` when
    the mask exists (and ``load_gt``), ``saliency`` with ``saliency_dir``, and ``pseudo_seg``
    with ``pseudo_label_dir``.

    Args:
        data_root: the dataset directory.
        split: a list name (see :attr:`SPLITS`); the list is the first of
            :attr:`LIST_CANDIDATES` that exists, unless ``list_file`` is given.
        list_file: an explicit list (``{split}`` is substituted); relative paths are looked
            up under ``data_root`` first, then the working directory.
        img_dir / img_suffix: image folder (relative to ``data_root``) and suffix.
        seg_dir: mask folder, ``'auto'`` (:meth:`default_seg_dir`), a ``{split: folder}``
            dict, or ``None`` for no masks.
        saliency_dir: folder of 8-bit saliency PNGs (e.g. ``'saliency_aug'``), or ``None``.
            The published map sets cover a training split only (``saliency_aug``: the
            ``train_aug`` images), so a split none of whose images has a map there is read
            without saliency (the ``val`` images of a test); a split with some maps must have
            all of them (a missing one is an error naming it).
        pseudo_label_dir: folder of pseudo-label PNGs read as ``pseudo_seg`` (relative to
            ``data_root``, or absolute, e.g. a pipeline stage's output); every listed image
            must have one.
        labels_from: where image-level labels come from: ``'masks'``, ``'cls_labels_npy'``
            (psa/irn), ``'train_cls_txt'`` (OAA), ``'none'``, or ``'auto'``:
            ``cls_labels_file`` if given, else ``<list>_cls.txt`` beside the list if present,
            else the masks.
        cls_labels_file: the label file for ``'cls_labels_npy'`` (default
            ``<data_root>/cls_labels.npy``) or ``'train_cls_txt'`` (default
            ``<list>_cls.txt``); ``{split}`` is substituted.
        label_cache: where labels derived from masks are cached: ``True`` (``$WSSS_CACHE`` or
            ``~/.cache/wsss``), a directory, or ``False``.  Never inside ``data_root``.
        require_labels: refuse images without image labels (default: all splits but
            ``test``, whose images have neither masks nor labels and get a zero vector).
        pipeline, max_samples, load_gt: as in :class:`VOCLayoutDataset`.
        num_classes: optional; if given it must equal ``len(CLASSES)``.
    """

    CLASSES: Tuple[str, ...] = ()
    SPLITS: Tuple[str, ...] = ()
    LIST_CANDIDATES: Tuple[str, ...] = ('ImageSets/Segmentation/{split}.txt',)
    NAME = 'dataset'

    def __init__(self, data_root: PathLike, split: str = 'train', *,
                 list_file: Optional[PathLike] = None, img_dir: str = 'JPEGImages',
                 img_suffix: str = '.jpg', seg_dir: Union[str, Mapping, None] = 'auto',
                 seg_suffix: str = '.png', saliency_dir: Optional[str] = None,
                 pseudo_label_dir: Optional[PathLike] = None, labels_from: str = 'auto',
                 cls_labels_file: Optional[PathLike] = None,
                 label_cache: Union[bool, PathLike] = True,
                 require_labels: Optional[bool] = None, pipeline: Optional[Sequence] = None,
                 max_samples: Optional[int] = None, load_gt: bool = True,
                 num_classes: Optional[int] = None):
        if num_classes is not None and int(num_classes) != len(self.CLASSES):
            raise ValueError(f'{type(self).__name__} has {len(self.CLASSES)} classes, '
                             f'not num_classes={num_classes}')
        if labels_from not in LABEL_SOURCES:
            raise ValueError(f'labels_from must be one of {LABEL_SOURCES}, not {labels_from!r}')
        self.data_root = Path(data_root).expanduser()
        if not self.data_root.is_dir():
            raise DataFileError(f'{self.NAME} data root not found: {self.data_root}')
        self.split = split
        self.num_classes = len(self.CLASSES)
        self.class_names = tuple(self.CLASSES)
        self.load_gt = load_gt
        self.require_labels = (split != 'test') if require_labels is None else bool(require_labels)
        self.list_path = self.resolve_list(split, list_file)
        ids = read_list(self.list_path)
        if max_samples is not None:
            ids = ids[:int(max_samples)]
        self.seg_dir = self._resolve_seg_dir(seg_dir, split)
        self.label_source = self._label_source(labels_from, cls_labels_file)
        self.records = self._build_records(
            ids, img_dir, img_suffix, seg_suffix, saliency_dir, pseudo_label_dir, label_cache)
        self.pipeline = Compose(pipeline)

    # ------------------------------------------------------------------ hooks
    def default_seg_dir(self, split: str) -> Optional[str]:
        """The mask folder used when ``seg_dir='auto'``."""
        return 'SegmentationClass'

    def file_path(self, folder: Path, img_id: str, suffix: str) -> Path:
        """Where ``img_id``'s file lives in ``folder`` (COCO adds a per-split subfolder)."""
        return folder / f'{img_id}{suffix}'

    # ------------------------------------------------------------------ paths
    def user_path(self, path: PathLike) -> Path:
        """A user-given file: ``{split}`` substituted; relative: data_root first, then cwd."""
        path = Path(str(path).replace('{split}', self.split)).expanduser()
        if not path.is_absolute() and (self.data_root / path).exists():
            return self.data_root / path
        return path

    def resolve_list(self, split: str, list_file: Optional[PathLike]) -> Path:
        """The list file of ``split``: ``list_file`` or the first existing candidate."""
        if list_file is not None:
            path = self.user_path(list_file)
            if not path.is_file():
                raise DataFileError(f'image list not found: {path}')
            return path
        tried = [self.data_root / c.format(split=split) for c in self.LIST_CANDIDATES]
        for path in tried:
            if path.is_file():
                return path
        known = f' (known splits: {", ".join(self.SPLITS)})' if self.SPLITS else ''
        raise DataFileError(f"{self.NAME}: no image list for split '{split}'{known}; looked for "
                            + ', '.join(str(p) for p in tried))

    def _resolve_seg_dir(self, seg_dir, split: str) -> Optional[Path]:
        if isinstance(seg_dir, Mapping):
            seg_dir = seg_dir.get(split, 'auto')
        if seg_dir == 'auto':
            seg_dir = self.default_seg_dir(split)
        return None if seg_dir is None else self.data_root / seg_dir

    def _existing_dir(self, folder: Optional[PathLike], what: str) -> Optional[Path]:
        if folder is None:
            return None
        path = self.data_root / Path(folder).expanduser()
        if not path.is_dir():
            raise DataFileError(f'{self.NAME}: {what} directory not found: {path}')
        return path

    # ------------------------------------------------------------------ labels
    def _label_source(self, labels_from: str, cls_labels_file) -> Tuple[str, Optional[Path]]:
        """``(kind, file)`` with kind 'masks', 'file' or 'none'."""
        if labels_from == 'none':
            return 'none', None
        if labels_from == 'masks':
            return 'masks', None
        oaa_default = self.list_path.with_name(f'{self.list_path.stem}_cls.txt')
        if labels_from == 'auto':
            if cls_labels_file is not None:
                return 'file', self.user_path(cls_labels_file)
            return ('file', oaa_default) if oaa_default.is_file() else ('masks', None)
        suffix = '.npy' if labels_from == 'cls_labels_npy' else '.txt'
        if cls_labels_file is None:
            path = self.data_root / 'cls_labels.npy' if suffix == '.npy' else oaa_default
        else:
            path = self.user_path(cls_labels_file)
        if path.suffix != suffix:
            raise DataFileError(f"{path}: labels_from='{labels_from}' expects a '{suffix}' file")
        return 'file', path

    def _image_labels(self, ids: List[str], seg_paths: Dict[str, Optional[Path]],
                      label_cache) -> Dict[str, Optional[tuple]]:
        """0-based class ids per image, ``None`` where unknown (allowed without require)."""
        kind, path = self.label_source
        if kind == 'none':
            return {i: None for i in ids}
        if kind == 'file':
            table = load_label_file(path, self.num_classes)
            found = {i: tuple(int(c) for c in table[i].nonzero()[0]) if i in table else None
                     for i in ids}
            self._check_known(found, f'no labels in {path} for')
            return found
        with_mask = [i for i in ids if seg_paths.get(i) is not None]
        found = {i: None for i in ids}
        for folder, group in self._group_by_folder(with_mask, seg_paths).items():
            vectors = labels_from_masks(folder, group, self.num_classes,
                                        seg_paths[group[0]].suffix, self._cache_dir(label_cache))
            found.update({i: tuple(int(c) for c in vectors[i].nonzero()[0]) for i in group})
        self._check_known(found, f'no mask under {self.seg_dir} to derive the labels of')
        return found

    def _check_known(self, found: Dict[str, Optional[tuple]], reason: str) -> None:
        missing = [i for i, v in found.items() if v is None]
        if missing and self.require_labels:
            more = f' and {len(missing) - 1} more' if len(missing) > 1 else ''
            raise DataFileError(f"{self.NAME} split '{self.split}' ({self.list_path}): {reason} "
                                f"image {missing[0]}{more} (pass require_labels=False to load "
                                'them with an all-zero label vector)')

    @staticmethod
    def _group_by_folder(ids: List[str], paths: Dict[str, Optional[Path]]) -> Dict[Path, List[str]]:
        groups: Dict[Path, List[str]] = defaultdict(list)
        for img_id in ids:
            groups[paths[img_id].parent].append(img_id)
        return groups

    @staticmethod
    def _cache_dir(label_cache) -> Optional[Path]:
        if label_cache is True:
            from .synthetic_shapes_cache import default_cache_root
            return default_cache_root()
        return Path(label_cache).expanduser() if label_cache else None

    # ------------------------------------------------------------------ records
    def _build_records(self, ids, img_dir, img_suffix, seg_suffix, saliency_dir,
                       pseudo_label_dir, label_cache) -> List[ListedRecord]:
        img_root = self.data_root / img_dir
        seg_paths = {i: self._existing_file(self.seg_dir, i, seg_suffix) for i in ids}
        sal_root = self._existing_dir(saliency_dir, 'saliency')
        saliency = self._saliency_paths(ids, sal_root) if sal_root else {}
        pseudo_root = self._existing_dir(pseudo_label_dir, 'pseudo-label')
        pseudo = {i: self.file_path(pseudo_root, i, '.png') for i in ids} if pseudo_root else {}
        absent = [p for p in pseudo.values() if not p.is_file()]
        if absent:
            raise DataFileError(f'pseudo label not found: {absent[0]}'
                                + (f' (and {len(absent) - 1} more)' if len(absent) > 1 else ''))
        labels = self._image_labels(ids, seg_paths, label_cache)
        return [ListedRecord(
            img_id=i, img_path=self.file_path(img_root, i, img_suffix), seg_path=seg_paths[i],
            saliency_path=saliency.get(i),
            class_ids=labels[i] or (), pseudo_path=pseudo.get(i),
            has_labels=labels[i] is not None) for i in ids]

    def _saliency_paths(self, ids: List[str], sal_root: Path) -> Dict[str, Path]:
        """``{id: map}`` of the split: every image's, or none when no image has one (a map
        set that covers another split); some but not all is an error naming a missing one."""
        paths = {i: self.file_path(sal_root, i, '.png') for i in ids}
        missing = [p for p in paths.values() if not p.is_file()]
        if len(missing) == len(paths):
            return {}
        if missing:
            raise DataFileError(
                f"{self.NAME} split '{self.split}': saliency map not found: {missing[0]} "
                f'({len(missing)} of {len(paths)} missing; the maps under {sal_root} cover '
                'part of the split)')
        return paths

    def _existing_file(self, folder: Optional[Path], img_id: str, suffix: str) -> Optional[Path]:
        if folder is None:
            return None
        path = self.file_path(folder, img_id, suffix)
        return path if path.is_file() else None

    # ------------------------------------------------------------------ access
    def load_sample(self, index: int) -> dict:
        """The raw sample (before the pipeline), with ``pseudo_seg`` when configured."""
        sample = super().load_sample(index)
        rec = self.records[index]
        if rec.pseudo_path is not None:
            pseudo = read_label_png(rec.pseudo_path, self.num_classes)
            check_same_size(pseudo, sample['img'].shape[:2], rec.pseudo_path, 'pseudo-label')
            sample['pseudo_seg'] = pseudo
        return sample

    @property
    def metainfo(self) -> dict:
        return dict(classes=self.class_names, num_classes=self.num_classes, split=self.split,
                    dataset=self.NAME,
                    palette=[tuple(int(v) for v in c) for c in voc_palette(self.num_classes + 1)])


@DATASETS.register_module()
class VOC2012(ListedSegmentationDataset):
    """PASCAL VOC 2012 (+ SBD ``train_aug``), 20 classes; see the module docstring.

    ``seg_dir='auto'`` reads ``SegmentationClassAug`` for the ``*_aug`` splits (the official
    ``SegmentationClass`` lacks the SBD images) and ``SegmentationClass`` for the others when
    it exists (the ground truth of the usual train/val evaluations), else
    ``SegmentationClassAug``.  Lists are searched in ``ImageSets/Segmentation`` then
    ``ImageSets/SegmentationAug``.
    """

    CLASSES = VOC_CLASSES
    SPLITS = VOC_SPLITS
    LIST_CANDIDATES = ('ImageSets/Segmentation/{split}.txt',
                       'ImageSets/SegmentationAug/{split}.txt')
    NAME = 'VOC2012'

    def default_seg_dir(self, split: str) -> Optional[str]:
        if split.endswith('_aug') or not (self.data_root / 'SegmentationClass').is_dir():
            return 'SegmentationClassAug'
        return 'SegmentationClass'
