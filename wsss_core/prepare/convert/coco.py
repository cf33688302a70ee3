"""COCO instance annotations to VOC-style class PNGs (0 background, 1..80, 255 ignore).

Input: an ``instances_<split>2014.json`` (``images``, ``annotations``, ``categories``);
each annotation has ``image_id``, ``category_id``, ``iscrowd`` and ``segmentation`` as
polygons (a list of ``[x1, y1, x2, y2, ...]``), an uncompressed RLE (``{"size": [h, w],
"counts": [n0, n1, ...]}``, how COCO stores crowds) or a compressed RLE (``counts`` a
string).  pycocotools decodes all three (``pip install 'wsss-core[prepare]'``).

Output: ``<out_dir>/<file stem>.png`` per image (``COCO_train2014_000000000009.png``, the
image id :class:`~wsss_core.datasets.coco14.COCO2014` uses), VOC-palette PNGs with

* **class values**: 0 background, ``1 + i`` for the category id
  :data:`~wsss_core.datasets.coco14.COCO_CATEGORY_IDS` ``[i]``: the 80 official category
  ids in ascending order, i.e. the order of the sorted COCO ids, named as in
  :data:`~wsss_core.datasets.class_names.COCO_CLASSES` (the JSON's category names are
  checked against them);
* **overlaps**: the non-crowd instances of an image are painted from the largest to the
  smallest (pixel count of the decoded mask; ties by annotation id), each over the ones
  before, so a small object lying on a large one (a cup on a dining table) stays visible
  instead of vanishing under whichever was annotated last;
* **crowd regions** (``iscrowd=1``, one RLE over a group of objects whose instances are not
  separated): ``crowd='ignore'`` (default) paints them 255 *under* the non-crowd instances,
  so what no single instance covers is left out of training and evaluation, as COCO's own
  evaluation ignores crowd regions; ``'class'`` paints them with their class instead
  (also under the instances), ``'skip'`` leaves them background.  With ``'ignore'`` a class
  present in an image only as a crowd is not in the image labels derived from its mask.

Polygon parts with fewer than three points are dropped (pycocotools takes parts of exactly
four numbers for boxes); an annotation left without any region paints nothing.
Images without annotations get an all-background mask.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import numpy as np

from ...datasets.class_names import COCO_CLASSES
from ...datasets.coco14 import COCO_CATEGORY_IDS
from ...io import IGNORE_INDEX, DataFileError, save_label_png

__all__ = ['CROWD_MODES', 'load_instances', 'category_labels', 'decode_annotation',
           'render_class_mask', 'coco_class_masks', 'PREPARE_EXTRA_HINT']

PREPARE_EXTRA_HINT = "pip install 'wsss-core[prepare]'"
CROWD_MODES = ('ignore', 'class', 'skip')
_SHOWN = 5


def _mask_api():
    try:
        from pycocotools import mask as mask_api
    except ImportError as exc:
        raise ImportError(f'converting COCO annotations to masks needs pycocotools: '
                          f'{PREPARE_EXTRA_HINT}') from exc
    return mask_api


def load_instances(instances_json) -> dict:
    """The parsed instances JSON; :class:`DataFileError` naming the file if it is not one."""
    path = Path(instances_json)
    try:
        with open(path, encoding='utf-8') as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise DataFileError(f'COCO annotation file not found: {path}') from None
    except (OSError, ValueError) as exc:
        raise DataFileError(f'cannot read COCO annotation file {path}: {exc}') from exc
    if not isinstance(data, dict) or not all(k in data for k in ('images', 'annotations',
                                                                  'categories')):
        raise DataFileError(f'{path}: not a COCO instances file (needs images, annotations '
                            'and categories)')
    return data


def category_labels(categories: Sequence[Mapping], source='instances') -> Dict[int, int]:
    """``{COCO category id: label 1..80}`` after checking each category's id and name.

    A category whose id is not one of the 80 official ones, or whose name differs from
    :data:`COCO_CLASSES` at that label, raises :class:`DataFileError`.
    """
    label_of = {cat_id: i + 1 for i, cat_id in enumerate(COCO_CATEGORY_IDS)}
    bad = []
    for cat in categories:
        cat_id, name = cat.get('id'), cat.get('name')
        if cat_id not in label_of:
            bad.append(f'id {cat_id!r} ({name!r}) is not a COCO 2014 category id')
        elif name is not None and name != COCO_CLASSES[label_of[cat_id] - 1]:
            bad.append(f'id {cat_id} is {name!r} here but '
                       f'{COCO_CLASSES[label_of[cat_id] - 1]!r} in COCO 2014')
    if bad:
        raise DataFileError(f'{source}: unexpected categories: ' + '; '.join(bad[:_SHOWN]))
    return label_of


def decode_annotation(segmentation, height: int, width: int, mask_api=None
                      ) -> Optional[np.ndarray]:
    """(H, W) bool mask of one annotation's ``segmentation``; ``None`` if it has no region."""
    mask_api = mask_api or _mask_api()
    if isinstance(segmentation, list):
        parts = [list(map(float, p)) for p in segmentation if len(p) >= 6]
        if not parts:
            return None
        rle = mask_api.merge(mask_api.frPyObjects(parts, height, width))
    elif isinstance(segmentation, dict) and isinstance(segmentation.get('counts'), list):
        rle = mask_api.frPyObjects(segmentation, height, width)
    elif isinstance(segmentation, dict) and isinstance(segmentation.get('counts'), (str, bytes)):
        counts = segmentation['counts']
        rle = dict(size=list(segmentation['size']),
                   counts=counts.encode('ascii') if isinstance(counts, str) else counts)
    else:
        raise ValueError(f'unknown segmentation format {type(segmentation).__name__}')
    with warnings.catch_warnings():   # pycocotools' decode vs NumPy 2's copy keyword
        warnings.simplefilter('ignore', DeprecationWarning)
        mask = mask_api.decode(rle)
    if mask.shape[:2] != (height, width):
        raise ValueError(f"RLE size {mask.shape[:2]} differs from the image's "
                         f'{(height, width)}')
    return mask.astype(bool)


def render_class_mask(height: int, width: int, annotations: Iterable[Mapping],
                      label_of: Mapping[int, int], crowd: str = 'ignore',
                      mask_api=None) -> np.ndarray:
    """One image's (H, W) uint8 class map from its annotations (module docstring rules)."""
    if crowd not in CROWD_MODES:
        raise ValueError(f'crowd must be one of {CROWD_MODES}, not {crowd!r}')
    mask_api = mask_api or _mask_api()
    crowds, instances = [], []
    for ann in annotations:
        is_crowd = bool(ann.get('iscrowd', 0))
        if is_crowd and crowd == 'skip':
            continue
        try:
            region = decode_annotation(ann['segmentation'], height, width, mask_api)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataFileError(f"annotation {ann.get('id')!r} of image "
                                f"{ann.get('image_id')!r}: {exc}") from exc
        if region is None:
            continue
        cat_id = ann.get('category_id')
        if cat_id not in label_of:
            raise DataFileError(f"annotation {ann.get('id')!r}: category id {cat_id!r} is not "
                                'among the categories')
        value = IGNORE_INDEX if is_crowd and crowd == 'ignore' else label_of[cat_id]
        entry = (-int(region.sum()), ann.get('id', 0), value, region)
        (crowds if is_crowd else instances).append(entry)
    label = np.zeros((height, width), dtype=np.uint8)
    for group in (crowds, instances):   # crowds first: every instance lies over them
        for _, _, value, region in sorted(group, key=lambda e: (e[0], e[1])):
            label[region] = value
    return label


def _select_images(images: Sequence[Mapping], image_ids, source) -> List[Mapping]:
    if image_ids is None:
        return sorted(images, key=lambda im: im['id'])
    by_id = {im['id']: im for im in images}
    by_stem = {Path(im['file_name']).stem: im for im in images}
    chosen, unknown = [], []
    for key in image_ids:
        image = by_stem.get(key) if isinstance(key, str) else by_id.get(key)
        (chosen if image is not None else unknown).append(image if image is not None else key)
    if unknown:
        raise DataFileError(f'{source}: no image {unknown[:_SHOWN]} (give COCO image ids or '
                            'file stems such as COCO_train2014_000000000009)')
    return chosen


def coco_class_masks(instances_json, out_dir, image_ids: Optional[Iterable[Union[int, str]]]
                     = None, crowd: str = 'ignore',
                     progress: Optional[Callable[[int, int], None]] = None) -> List[str]:
    """Write ``<out_dir>/<file stem>.png`` for the images of a COCO instances file.

    Args:
        instances_json: ``instances_train2014.json`` / ``instances_val2014.json``.
        out_dir: the mask folder (e.g. ``coco2014/SegmentationClass/train2014``).
        image_ids: COCO image ids (int) or file stems (str); default every image, by id.
        crowd: ``'ignore'`` (255), ``'class'`` or ``'skip'``; see the module docstring.
        progress: called as ``progress(done, total)`` after each image.

    Returns the stems written, in the order written.  Each PNG is written atomically.
    """
    if crowd not in CROWD_MODES:
        raise ValueError(f'crowd must be one of {CROWD_MODES}, not {crowd!r}')
    mask_api = _mask_api()
    source = Path(instances_json)
    data = load_instances(source)
    label_of = category_labels(data['categories'], source)
    by_image: Dict[int, List[Mapping]] = {}
    for ann in data['annotations']:
        by_image.setdefault(ann['image_id'], []).append(ann)
    images = _select_images(data['images'], image_ids, source)
    out_dir = Path(out_dir)
    written = []
    for done, image in enumerate(images, 1):
        stem = Path(image['file_name']).stem
        label = render_class_mask(int(image['height']), int(image['width']),
                                  by_image.get(image['id'], ()), label_of, crowd, mask_api)
        save_label_png(out_dir / f'{stem}.png', label)
        written.append(stem)
        if progress is not None:
            progress(done, len(images))
    return written
