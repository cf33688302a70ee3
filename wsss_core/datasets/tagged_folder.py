"""Your own data: a folder of images and a file of image tags, no masks needed.

::

    my_data/
      images/001.jpg, images/cats/002.png, ...   data_root (nested folders allowed)
      tags.csv                                    labels: one row per image (see below)
      masks/001.png, masks/cats/002.png           mask_dir, optional: for evaluation only
      saliency/001.png, ...                       saliency_dir, optional

``labels`` is a CSV/TSV (columns ``image``, ``tags``, optional ``split``) or a JSON file
(``{"image": ["cat", "dog"]}`` or ``[{"image": ..., "tags": [...], "split": ...}]``); the
forms and the tag-splitting rule are in :mod:`.tag_files`.

Rules:

* **Images.** A row's ``image`` is the file's path under ``data_root`` (``/`` separated;
  ``\\`` is read as ``/``), with its suffix, or without one when exactly one file
  ``<path>.<suffix>`` with an image suffix (:data:`IMAGE_SUFFIXES`, any case) exists.
  Only the images the file names are used; other files in the folder are ignored.
* **Image ids** (the names of every per-image artifact, e.g. ``cams/<id>.npz``,
  ``labels/<id>.png``): the path under ``data_root`` without its suffix, with each ``/``
  replaced by ``__`` so that an id is a plain file name: ``cats/002.png`` -> ``cats__002``.
  Two rows giving one id (``a/b.jpg`` and ``a__b.png``, or ``x.jpg`` and ``x.png``) are an
  error.
* **Classes.** ``class_names`` lists the C foreground classes in label order (class k is
  label k + 1 in label maps; 0 is background, implicit, 255 ignore): a list, or a text file
  of one name per line.  ``None``: the sorted union of every tag in the file (all splits).
  A tag that is not a class is an error; so is a class named ``background``.  Give the
  names explicitly when masks are used: mask value k + 1 must mean ``class_names[k]``.
* **Empty tag lists** (an image showing none of the classes) are refused unless
  ``allow_empty_tags=True``; then the image's label vector is all zero and its pseudo label
  all background.
* **Splits.** A stage asks for a split by name.  With a ``split`` column, split ``s`` is the
  rows whose split is ``s``.  Without one, ``val_fraction = f > 0`` puts an image in
  ``val`` when ``h(split_seed, id) < f`` (``h``: the first 32 bits of SHA-1 of
  ``"<split_seed>:<id>"`` over 2^32; an image's split never changes when rows are added) and
  in ``train`` otherwise; with ``f = 0`` every image is in ``train``.  ``'all'`` is every
  row whatever its split (the name is reserved).  An empty split is an error.
* **Masks / saliency.** ``<dir>/<path without suffix>.png`` (the image's relative path), or
  ``<dir>/<id>.png``.  Masks are index PNGs (palette or 8-bit: 0 background, 1..C, 255
  ignore); an image without one simply has no ``gt_seg`` (evaluation refuses such a split).
  Saliency maps (8-bit gray) must exist for every image of the split.
* **Paths.** ``labels``, ``class_names`` (a file), ``mask_dir`` and ``saliency_dir`` that
  are relative are looked up under ``data_root`` first, then the working directory.

Every error about the files is a :class:`~wsss_core.io.DataFileError` naming the file and,
for a row of the tag file, its line (``tags.csv:7``).  Samples are those of
:class:`~.voc_layout.VOCLayoutDataset`: ``img``, ``img_id``, ``labels`` (C multi-hot),
``gt_seg`` / ``saliency`` when present; ``resize`` (core ``Resize`` options) resizes each
sample before the ``pipeline``, e.g. a classifier's fixed input size through its stage's
``data`` option, while the CAM and label stages keep the images' own size.
"""
from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath
from typing import Dict, List, Optional, Sequence, Tuple, Union

from ..io import DataFileError
from ..registry import DATASETS
from ..visualization.palette import voc_palette
from .records import RecordsDataset
from .tag_files import TagRow, check_class_names, read_class_names_file, read_tag_file
from .text_files import check_image_id
from .transforms import Compose, Resize
from .voc_layout import SampleRecord, read_record_sample

__all__ = ['TaggedImageFolder', 'IMAGE_SUFFIXES', 'ALL_SPLIT', 'ID_SEPARATOR', 'image_id_of',
           'val_hash_fraction']

IMAGE_SUFFIXES: Tuple[str, ...] = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')
ALL_SPLIT = 'all'
ID_SEPARATOR = '__'

PathLike = Union[str, Path]


def image_id_of(rel_path: str) -> str:
    """The image id of a path under the data root (module docstring): suffix dropped,
    ``/`` -> ``__``."""
    rel = PurePosixPath(rel_path)
    return str(rel.with_suffix('')).replace('/', ID_SEPARATOR)


def val_hash_fraction(img_id: str, seed: int) -> float:
    """``h(seed, id)`` in [0, 1): the first 32 bits of SHA-1 of ``"<seed>:<id>"`` over 2^32."""
    digest = hashlib.sha1(f'{seed}:{img_id}'.encode('utf-8')).digest()
    return int.from_bytes(digest[:4], 'big') / 2 ** 32


@DATASETS.register_module()
class TaggedImageFolder(RecordsDataset):
    """A folder of images with image-level tags from a CSV/TSV/JSON file (module docstring).

    Args:
        data_root: the folder holding the images (possibly in subfolders).
        labels: the tag file (``.csv``, ``.tsv`` or ``.json``).
        split: the split to load (``'train'``, ``'val'``, a name of the split column, or
            ``'all'``).
        class_names: the C class names in label order (a list, or a text file of one name
            per line), or None for the sorted union of the file's tags.
        mask_dir / saliency_dir: optional folders of index-mask / saliency PNGs.
        val_fraction / split_seed: the hashed ``val`` split of a file without a split column.
        tag_separator: split tag strings on exactly this string (default: the auto rule of
            :mod:`.tag_files`).
        allow_empty_tags: accept rows without tags (background-only images).
        resize: core ``Resize`` options applied to every sample before ``pipeline``.
        pipeline, max_samples, load_gt: as in :class:`~.voc_layout.VOCLayoutDataset`.
    """

    NAME = 'TaggedImageFolder'

    def __init__(self, data_root: PathLike, labels: PathLike, split: str = 'train', *,
                 class_names: Union[Sequence[str], PathLike, None] = None,
                 mask_dir: Optional[PathLike] = None, saliency_dir: Optional[PathLike] = None,
                 val_fraction: float = 0.0, split_seed: int = 0,
                 tag_separator: Optional[str] = None, allow_empty_tags: bool = False,
                 resize: Optional[dict] = None, pipeline: Optional[Sequence] = None,
                 max_samples: Optional[int] = None, load_gt: bool = True):
        if not 0.0 <= float(val_fraction) < 1.0:
            raise ValueError(f'val_fraction must lie in [0, 1), got {val_fraction}')
        self.data_root = Path(data_root).expanduser()
        if not self.data_root.is_dir():
            raise DataFileError(f'{self.NAME}: image folder (data_root) not found: '
                                f'{self.data_root}')
        self.labels_path = self._user_path(labels)
        if not self.labels_path.is_file():
            raise DataFileError(f'{self.NAME}: tag file (labels) not found: {self.labels_path}')
        self.split = str(split)
        self.load_gt = bool(load_gt)
        self.val_fraction, self.split_seed = float(val_fraction), int(split_seed)
        rows = read_tag_file(self.labels_path, tag_separator)
        self.class_names = self._class_names(class_names, rows)
        self.num_classes = len(self.class_names)
        self._listing: Dict[Path, Dict[str, List[str]]] = {}
        resolved = [self._resolve_row(row, allow_empty_tags) for row in rows]
        self._check_unique(resolved)
        chosen = self._select_split(rows, resolved)
        if max_samples is not None:
            chosen = chosen[:int(max_samples)]
        mask_root = self._folder(mask_dir, 'mask_dir')
        sal_root = self._folder(saliency_dir, 'saliency_dir')
        self.records = [self._record(item, mask_root, sal_root) for item in chosen]
        missing = [r for r in self.records if sal_root and r.saliency_path is None]
        if missing:
            raise DataFileError(f'{self.NAME}: no saliency map in {sal_root} for image '
                                f'{missing[0].img_path}' + (f' and {len(missing) - 1} more'
                                                            if len(missing) > 1 else ''))
        self.resize = Resize(**resize) if resize else None
        self.pipeline = Compose(pipeline)

    # ------------------------------------------------------------------ paths
    def _user_path(self, path: PathLike) -> Path:
        path = Path(path).expanduser()
        if not path.is_absolute() and (self.data_root / path).exists():
            return self.data_root / path
        return path

    def _folder(self, folder: Optional[PathLike], option: str) -> Optional[Path]:
        if folder is None:
            return None
        path = self._user_path(folder)
        if not path.is_dir():
            raise DataFileError(f'{self.NAME}: {option} folder not found: {path}')
        return path

    def _names_in(self, folder: Path) -> Dict[str, List[str]]:
        """``{stem: [file names]}`` of the image files in ``folder`` (listed once)."""
        if folder not in self._listing:
            found: Dict[str, List[str]] = {}
            if folder.is_dir():
                for p in folder.iterdir():
                    if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
                        found.setdefault(p.stem, []).append(p.name)
            self._listing[folder] = found
        return self._listing[folder]

    def _image_path(self, image: str, where: str) -> Path:
        """The image file a row names (module docstring), or a DataFileError at ``where``."""
        rel = PurePosixPath(image.replace('\\', '/'))
        if rel.is_absolute() or '..' in rel.parts or not rel.parts or \
                any(part in ('', '.') for part in rel.parts) or '\x00' in image:
            raise DataFileError(f'{where}: image {image!r} is not a path under the data root '
                                '(absolute paths and .. are not allowed)')
        path = self.data_root.joinpath(*rel.parts)
        if path.is_file():
            return path
        named_suffix = rel.suffix.lower() in IMAGE_SUFFIXES
        stem = path.stem if named_suffix else path.name
        candidates = sorted(self._names_in(path.parent).get(stem, []))
        if len(candidates) == 1 and not named_suffix:
            return path.parent / candidates[0]
        if candidates and not named_suffix:
            raise DataFileError(f'{where}: image {image!r} is ambiguous: {candidates} in '
                                f'{path.parent}; name it with its suffix')
        other = f' (that folder has {", ".join(candidates)})' if candidates else ''
        raise DataFileError(f'{where}: image {image!r} not found under '
                            f'{self.data_root}{other}')

    # ------------------------------------------------------------------ rows
    def _class_names(self, class_names, rows: List[TagRow]) -> Tuple[str, ...]:
        if class_names is None:
            union = sorted({t for row in rows for t in row.tags})
            if not union:
                raise DataFileError(f'{self.labels_path}: no row has a tag, so there are no '
                                    'classes to learn')
            first_line = {}
            for row in rows:
                for t in row.tags:
                    first_line.setdefault(t, row.lineno)
            return check_class_names(union, self.labels_path, [first_line[t] for t in union])
        if isinstance(class_names, (str, Path)):
            path = self._user_path(class_names)
            names, lines = read_class_names_file(path)
            if not names:
                raise DataFileError(f'class name file {path} lists no class')
            return check_class_names(names, path, lines)
        if not isinstance(class_names, (list, tuple)) or not class_names:
            raise ValueError(f'class_names must be a non-empty list of names, a file of them, '
                             f'or None, not {class_names!r}')
        return check_class_names(list(class_names), 'class_names')

    def _resolve_row(self, row: TagRow, allow_empty_tags: bool) -> tuple:
        """``(row, img_id, image path, class ids)``, refusing unknown tags and empty rows."""
        where = f'{self.labels_path}:{row.lineno}'
        if not row.tags and not allow_empty_tags:
            raise DataFileError(f'{where}: image {row.image!r} has no tags (for an image '
                                'showing none of the classes set allow_empty_tags=True)')
        index = {name: k for k, name in enumerate(self.class_names)}
        unknown = [t for t in row.tags if t not in index]
        if unknown:
            raise DataFileError(f'{where}: unknown class {unknown[0]!r} (classes: '
                                f'{", ".join(self.class_names)})')
        if row.split == ALL_SPLIT:
            raise DataFileError(f"{where}: split name '{ALL_SPLIT}' is reserved (it selects "
                                'every row); use another name')
        path = self._image_path(row.image, where)
        img_id = image_id_of(path.relative_to(self.data_root).as_posix())
        check_image_id(img_id, where)
        return row, img_id, path, tuple(sorted(index[t] for t in row.tags))

    def _check_unique(self, resolved: List[tuple]) -> None:
        first: Dict[str, TagRow] = {}
        for row, img_id, _, _ in resolved:
            if img_id in first:
                prev = first[img_id]
                same = prev.image == row.image
                what = f'image {row.image!r}' if same else \
                    f'{row.image!r} and {prev.image!r} (line {prev.lineno}) both give image id'
                raise DataFileError(
                    f'{self.labels_path}:{row.lineno}: '
                    + (f'{what} appears twice (first on line {prev.lineno}); each image may '
                       'be listed once' if same else
                       f"{what} {img_id!r} ('/' becomes '{ID_SEPARATOR}', the suffix is "
                       'dropped); rename one of them'))
            first[img_id] = row

    def _split_of(self, row: TagRow, img_id: str) -> str:
        if row.split is not None:
            return row.split
        if self.val_fraction > 0 and val_hash_fraction(img_id, self.split_seed) < \
                self.val_fraction:
            return 'val'
        return 'train'

    def _select_split(self, rows: List[TagRow], resolved: List[tuple]) -> List[tuple]:
        has_column = any(row.split is not None for row in rows)
        if has_column and self.val_fraction > 0:
            raise ValueError(f'{self.labels_path} has a split column; val_fraction '
                             f'({self.val_fraction}) would contradict it: set it to 0')
        if self.split == ALL_SPLIT:
            return resolved
        chosen = [item for item in resolved if self._split_of(item[0], item[1]) == self.split]
        if chosen:
            return chosen
        counts: Dict[str, int] = {}
        for row, img_id, _, _ in resolved:
            name = self._split_of(row, img_id)
            counts[name] = counts.get(name, 0) + 1
        rule = ('the split column' if has_column else
                f'val_fraction={self.val_fraction}' if self.val_fraction > 0 else
                'no split column and val_fraction=0: every image is in train')
        raise DataFileError(
            f"{self.labels_path}: split '{self.split}' has no images (by {rule}; splits: "
            + ', '.join(f'{k} ({v})' for k, v in sorted(counts.items()))
            + f"; '{ALL_SPLIT}' selects every image). Add a split column, set val_fraction, "
            "or leave the split out of the stage (e.g. the classifier's val_split=None)")

    def _record(self, item: tuple, mask_root, sal_root) -> SampleRecord:
        _, img_id, path, class_ids = item
        rel_stem = path.relative_to(self.data_root).with_suffix('')
        return SampleRecord(img_id, path, self._side_file(mask_root, rel_stem, img_id),
                            self._side_file(sal_root, rel_stem, img_id), class_ids)

    @staticmethod
    def _side_file(root: Optional[Path], rel_stem: Path, img_id: str) -> Optional[Path]:
        """``<root>/<relative path>.png``, else ``<root>/<id>.png``, else None."""
        if root is None:
            return None
        for cand in (root / rel_stem.with_name(rel_stem.name + '.png'), root / f'{img_id}.png'):
            if cand.is_file():
                return cand
        return None

    # ------------------------------------------------------------------ access
    def load_sample(self, index: int) -> dict:
        """The raw sample (before the pipeline; after ``resize``)."""
        sample = read_record_sample(self, self.records[index])
        return self.resize(sample) if self.resize is not None else sample

    @property
    def metainfo(self) -> dict:
        return dict(classes=self.class_names, num_classes=self.num_classes, split=self.split,
                    dataset=self.NAME,
                    palette=[tuple(int(v) for v in c) for c in voc_palette(self.num_classes + 1)])
