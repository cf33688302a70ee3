"""SBD class masks to PNGs, and VOC 2012 + SBD merged into the ``train_aug`` layout.

**SBD** (Hariharan et al., "Semantic Contours from Inverse Detectors", ICCV 2011) ships
``benchmark_RELEASE/dataset/`` with ``img/<id>.jpg``, ``train.txt`` (8498 ids),
``val.txt`` (2857 ids) and ``cls/<id>.mat``: a MATLAB file holding one struct ``GTcls``
with the fields

* ``Segmentation``: H x W uint8 class map, 0 background, 1..20 the VOC classes (SBD has
  no 255 "void" band);
* ``Boundaries``: a 20 x 1 cell of sparse H x W boundary maps (not used here);
* ``CategoriesPresent``: the classes present (not used here).

:func:`read_sbd_class_mask` reads ``Segmentation`` with scipy (``scipy.io.loadmat``).

**The merge** (:func:`merge_voc_sbd`) writes, into the VOC 2012 folder the core's
:class:`~wsss_core.datasets.voc12.VOC2012` reads:

* ``ImageSets/SegmentationAug/train_aug.txt``: (VOC train + SBD train + SBD val) minus
  VOC val, sorted, each id once: 10582 images with the official data;
* ``ImageSets/SegmentationAug/trainval_aug.txt``: ``train_aug`` + VOC val (12031);
  both in deeplab-pytorch's two-column form ``/JPEGImages/<id>.jpg
  /SegmentationClassAug/<id>.png`` (:func:`~wsss_core.datasets.label_formats.read_list`
  reads it; ``VOC2012(split='train_aug')`` finds it);
* ``SegmentationClassAug/<id>.png``: one VOC-palette PNG per ``trainval_aug`` image.
  **VOC's own mask wins** where an image has both (VOC ``SegmentationClass``, 2913 images,
  of which about 2200 are also in SBD): the official masks carry the 255 band around
  objects that the VOC benchmark ignores, and the val images must keep the official
  ground truth, which is how the widely used ``SegmentationClassAug`` (12031 masks) was
  made; SBD's mask is used for every other image;
* ``cls_labels.npy``: psa's image-level labels (``{id: float32 (20,)}``, str keys, written
  by :func:`~wsss_core.datasets.label_formats.save_cls_labels_npy`) for every
  ``trainval_aug`` image.  psa builds them from the VOC XML annotations
  (``Annotations/<id>.xml``: every ``<object>`` whose ``<name>`` is a VOC class, the
  ``difficult`` ones included); ``labels_from='auto'`` (default) does so where the XML
  exists and takes the classes present in the merged mask otherwise; ``'xml'`` requires
  the XML, ``'masks'`` uses the masks only.

Every listed image must exist as ``JPEGImages/<id>.jpg`` (SBD's images are all VOC 2011
trainval images, in VOC 2012's ``JPEGImages``) and have the mask's size.
"""
from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Dict, List, Sequence, Set

import numpy as np
from PIL import Image

from ...datasets.class_names import VOC_CLASSES
from ...datasets.label_formats import read_list, save_cls_labels_npy, write_two_column_list
from ...io import IGNORE_INDEX, DataFileError, read_label_png, save_label_png

__all__ = ['MergeReport', 'find_sbd_dataset_dir', 'read_sbd_class_mask', 'sbd_mat_to_png',
           'voc_xml_class_ids', 'merge_voc_sbd', 'PREPARE_EXTRA_HINT']

PREPARE_EXTRA_HINT = "pip install 'wsss-core[prepare]'"
NUM_VOC_CLASSES = len(VOC_CLASSES)
AUG_MASK_DIR = 'SegmentationClassAug'
AUG_LIST_DIR = 'ImageSets/SegmentationAug'
LABEL_SOURCES = ('auto', 'xml', 'masks')
_SHOWN = 5


@dataclasses.dataclass
class MergeReport:
    """What :func:`merge_voc_sbd` wrote: image counts and where masks and labels came from."""
    train_aug: int = 0
    trainval_aug: int = 0
    masks_from_voc: int = 0
    masks_from_sbd: int = 0
    labels_from_xml: int = 0
    labels_from_masks: int = 0
    files: List[Path] = dataclasses.field(default_factory=list)


def _loadmat():
    try:
        from scipy.io import loadmat
    except ImportError as exc:  # pragma: no cover - scipy is in the prepare extra
        raise ImportError(f'reading SBD .mat masks needs scipy: {PREPARE_EXTRA_HINT}') from exc
    return loadmat


def _some(items: Sequence) -> str:
    shown = ', '.join(str(i) for i in list(items)[:_SHOWN])
    return shown + (f' ... ({len(items)} in all)' if len(items) > _SHOWN else '')


# ----------------------------------------------------------------------------- SBD files
def find_sbd_dataset_dir(sbd_root) -> Path:
    """The folder holding SBD's ``cls/``, ``train.txt`` and ``val.txt``.

    ``sbd_root`` may be that folder, ``benchmark_RELEASE`` (its ``dataset/``) or the folder
    above ``benchmark_RELEASE``.
    """
    root = Path(sbd_root).expanduser()
    for candidate in (root, root / 'dataset', root / 'benchmark_RELEASE' / 'dataset'):
        if (candidate / 'cls').is_dir():
            return candidate
    raise DataFileError(f'SBD not found under {root}: expected cls/, train.txt and val.txt in '
                        'it, in dataset/ or in benchmark_RELEASE/dataset/')


def read_sbd_class_mask(path) -> np.ndarray:
    """``GTcls.Segmentation`` of an SBD ``cls/<id>.mat`` as an (H, W) uint8 map (0..20).

    Raises :class:`DataFileError` naming the file when it is not a MATLAB file, has no
    ``GTcls`` struct with a 2-D integer ``Segmentation``, or holds values outside 0..20
    (255 is let through as "ignore").
    """
    path = Path(path)
    loadmat = _loadmat()
    try:
        mat = loadmat(path, squeeze_me=True, struct_as_record=False)
    except FileNotFoundError:
        raise DataFileError(f'SBD mask not found: {path}') from None
    except Exception as exc:
        raise DataFileError(f'cannot read SBD mask {path}: {exc}') from exc
    gt = mat.get('GTcls')
    seg = getattr(gt, 'Segmentation', None)
    if seg is None:
        found = sorted(k for k in mat if not k.startswith('__'))
        raise DataFileError(f'{path}: no GTcls.Segmentation (an SBD cls/*.mat holds the struct '
                            f'GTcls with Segmentation, Boundaries, CategoriesPresent); found '
                            f'{found}')
    seg = np.asarray(seg)
    if seg.ndim != 2 or seg.dtype.kind not in 'iu':
        raise DataFileError(f'{path}: GTcls.Segmentation must be a 2-D integer map, got '
                            f'{seg.dtype} {seg.shape}')
    values = np.unique(seg)
    bad = [int(v) for v in values if not (0 <= v <= NUM_VOC_CLASSES or v == IGNORE_INDEX)]
    if bad:
        raise DataFileError(f'{path}: class value(s) {bad} outside 0..{NUM_VOC_CLASSES} (and '
                            f'{IGNORE_INDEX})')
    return seg.astype(np.uint8)


def sbd_mat_to_png(mat_path, png_path) -> np.ndarray:
    """Write an SBD ``cls/<id>.mat`` as a VOC-palette PNG (atomically); return the mask."""
    mask = read_sbd_class_mask(mat_path)
    save_label_png(png_path, mask)
    return mask


# ----------------------------------------------------------------------------- VOC XML labels
def voc_xml_class_ids(path) -> Set[int]:
    """0-based VOC class ids of a VOC annotation XML (psa's rule).

    Every ``<object>``'s ``<name>`` that is one of :data:`VOC_CLASSES` counts, the
    ``difficult`` and ``truncated`` ones included; other names are ignored.
    """
    try:
        root = ElementTree.parse(path).getroot()
    except FileNotFoundError:
        raise DataFileError(f'annotation not found: {path}') from None
    except ElementTree.ParseError as exc:
        raise DataFileError(f'cannot parse annotation {path}: {exc}') from exc
    index = {name: i for i, name in enumerate(VOC_CLASSES)}
    names = (obj.findtext('name', default='').strip() for obj in root.iter('object'))
    return {index[n] for n in names if n in index}


def _mask_class_ids(mask: np.ndarray) -> Set[int]:
    return {int(v) - 1 for v in np.unique(mask) if 0 < v <= NUM_VOC_CLASSES}


# ----------------------------------------------------------------------------- merge
def _read_ids(path: Path, what: str) -> List[str]:
    if not path.is_file():
        raise DataFileError(f'{what} not found: {path}')
    return read_list(path)


def _check_images(voc_root: Path, ids: Sequence[str]) -> None:
    missing = [i for i in ids if not (voc_root / 'JPEGImages' / f'{i}.jpg').is_file()]
    if missing:
        raise DataFileError(f'{voc_root / "JPEGImages"}: no image for {_some(missing)} (SBD '
                            "images are VOC 2011 trainval images; is this VOC 2012's "
                            'JPEGImages?)')


def _aug_mask(img_id: str, voc_root: Path, sbd_dir: Path, report: MergeReport) -> np.ndarray:
    voc_mask = voc_root / 'SegmentationClass' / f'{img_id}.png'
    if voc_mask.is_file():
        report.masks_from_voc += 1
        return read_label_png(voc_mask, NUM_VOC_CLASSES)
    sbd_mat = sbd_dir / 'cls' / f'{img_id}.mat'
    if sbd_mat.is_file():
        report.masks_from_sbd += 1
        return read_sbd_class_mask(sbd_mat)
    raise DataFileError(f'no mask for image {img_id}: neither {voc_mask} nor {sbd_mat}')


def _check_size(voc_root: Path, img_id: str, mask: np.ndarray) -> None:
    img_path = voc_root / 'JPEGImages' / f'{img_id}.jpg'
    with Image.open(img_path) as img:
        width, height = img.size
    if mask.shape != (height, width):
        raise DataFileError(f'mask of {img_id} is {mask.shape[0]}x{mask.shape[1]} (H x W), its '
                            f'image {img_path} {height}x{width}')


def _image_labels(img_id: str, mask: np.ndarray, voc_root: Path, labels_from: str,
                  report: MergeReport) -> np.ndarray:
    xml = voc_root / 'Annotations' / f'{img_id}.xml'
    if labels_from == 'xml' or (labels_from == 'auto' and xml.is_file()):
        classes = voc_xml_class_ids(xml)
        report.labels_from_xml += 1
    else:
        classes = _mask_class_ids(mask)
        report.labels_from_masks += 1
    vec = np.zeros(NUM_VOC_CLASSES, dtype=np.float32)
    vec[sorted(classes)] = 1.0
    return vec


def merge_voc_sbd(voc_root, sbd_root, out_dir=None, labels_from: str = 'auto') -> MergeReport:
    """Merge VOC 2012 and SBD into ``train_aug`` (see the module docstring).

    Args:
        voc_root: ``VOCdevkit/VOC2012`` (``JPEGImages``, ``SegmentationClass``,
            ``ImageSets/Segmentation/{train,val}.txt``, optionally ``Annotations``).
        sbd_root: SBD's ``dataset`` folder, ``benchmark_RELEASE`` or the folder above it.
        out_dir: where ``SegmentationClassAug``, ``ImageSets/SegmentationAug`` and
            ``cls_labels.npy`` go; default ``voc_root`` (the layout ``VOC2012`` reads, next
            to ``JPEGImages``).
        labels_from: ``'auto'``, ``'xml'`` or ``'masks'`` (the source of ``cls_labels.npy``).

    Returns a :class:`MergeReport` (counts and the files written).  Every file is written
    atomically; running it again rewrites the same content.
    """
    if labels_from not in LABEL_SOURCES:
        raise ValueError(f'labels_from must be one of {LABEL_SOURCES}, not {labels_from!r}')
    voc_root = Path(voc_root).expanduser()
    out = Path(out_dir).expanduser() if out_dir is not None else voc_root
    sbd_dir = find_sbd_dataset_dir(sbd_root)
    seg_lists = voc_root / 'ImageSets' / 'Segmentation'
    voc_train = _read_ids(seg_lists / 'train.txt', 'VOC train list')
    voc_val = _read_ids(seg_lists / 'val.txt', 'VOC val list')
    sbd_ids = (_read_ids(sbd_dir / 'train.txt', 'SBD train list')
               + _read_ids(sbd_dir / 'val.txt', 'SBD val list'))
    train_aug = sorted(set(voc_train).union(sbd_ids).difference(voc_val))
    trainval_aug = sorted(set(train_aug).union(voc_val))
    _check_images(voc_root, trainval_aug)

    report = MergeReport(train_aug=len(train_aug), trainval_aug=len(trainval_aug))
    labels: Dict[str, np.ndarray] = {}
    for img_id in trainval_aug:
        mask = _aug_mask(img_id, voc_root, sbd_dir, report)
        _check_size(voc_root, img_id, mask)
        target = out / AUG_MASK_DIR / f'{img_id}.png'
        save_label_png(target, mask)
        report.files.append(target)
        labels[img_id] = _image_labels(img_id, mask, voc_root, labels_from, report)

    for name, split_ids in (('train_aug', train_aug), ('trainval_aug', trainval_aug)):
        target = out / AUG_LIST_DIR / f'{name}.txt'
        write_two_column_list(target, split_ids, seg_dir=AUG_MASK_DIR)
        report.files.append(target)
    target = out / 'cls_labels.npy'
    save_cls_labels_npy(target, labels)
    report.files.append(target)
    return report
