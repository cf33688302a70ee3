"""Tiny data trees in the real on-disk layouts, for conformance examples and plugin tests.

Written with Pillow directly (not with the readers under test).  Each tree is written once
per process into a temporary directory removed at exit.
"""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

#: image size (H, W) of every tree here
TREE_HW = (24, 32)


def _tmp_root(prefix: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, root, True)
    return root


def _write_pair(img_path: Path, mask_path: Path, cls: int, index: int) -> None:
    h, w = TREE_HW
    rng = np.random.default_rng(index)
    img = rng.integers(0, 90, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    top, left = 3 + index % 5, 4 + (2 * index) % 9
    mask[top: top + 10, left: left + 12] = cls
    img[mask > 0] += 120
    img_path.parent.mkdir(parents=True, exist_ok=True)
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(img_path, quality=95)
    Image.fromarray(mask, mode='L').save(mask_path)


@functools.lru_cache(maxsize=None)
def voc_tree(num_images: int = 4, num_classes: int = 20) -> Path:
    """``JPEGImages/``, ``SegmentationClass/`` (one object of class ``1 + i % C`` per image),
    ``ImageSets/Segmentation/{train,val}.txt`` (the same ids)."""
    root = _tmp_root('wsss_voc_tree_')
    ids = [f'2007_{i:06d}' for i in range(num_images)]
    for i, img_id in enumerate(ids):
        _write_pair(root / 'JPEGImages' / f'{img_id}.jpg',
                    root / 'SegmentationClass' / f'{img_id}.png', 1 + i % num_classes, i)
    lists = root / 'ImageSets' / 'Segmentation'
    lists.mkdir(parents=True)
    for split in ('train', 'val'):
        (lists / f'{split}.txt').write_text('\n'.join(ids) + '\n')
    return root


@functools.lru_cache(maxsize=None)
def coco_tree(num_images: int = 4) -> Path:
    """The flat COCO 2014 layout with VOC-style label PNGs (values 0..80):
    ``JPEGImages/``, ``SegmentationClass/``, ``ImageSets/{train,val}14.txt``."""
    root = _tmp_root('wsss_coco_tree_')
    ids = [f'COCO_train2014_{i:012d}' for i in range(num_images)]
    for i, img_id in enumerate(ids):
        _write_pair(root / 'JPEGImages' / f'{img_id}.jpg',
                    root / 'SegmentationClass' / f'{img_id}.png', 1 + (7 * i) % 80, i)
    (root / 'ImageSets').mkdir()
    for split in ('train', 'val'):
        (root / 'ImageSets' / f'{split}14.txt').write_text('\n'.join(ids) + '\n')
    return root


@functools.lru_cache(maxsize=None)
def wsol_tree(num_images: int = 4) -> Path:
    """A WSOL metadata split ``<root>/metadata/voc/train`` exported from :func:`voc_tree`
    (images, class labels, boxes, localisation masks); returns ``<root>``."""
    from ..datasets.voc_layout import VOCLayoutDataset
    from ..wsol.metadata import export_wsol_metadata
    root = _tmp_root('wsss_wsol_tree_')
    dataset = VOCLayoutDataset(voc_tree(num_images), split='train', num_classes=20)
    export_wsol_metadata(dataset, root, 'voc', 'train', min_component_pixels=4, copy=True)
    return root


@functools.lru_cache(maxsize=None)
def tagged_tree(num_images: int = 4, num_classes: int = 3) -> Path:
    """A folder for ``TaggedImageFolder``: ``images/`` (flat and one subfolder), ``tags.csv``
    (columns ``image,tags``, one class ``class_{1 + i % C}`` per image), ``masks/`` mirroring
    the images (the object painted with label ``1 + i % C``)."""
    root = _tmp_root('wsss_tagged_tree_')
    rows = ['image,tags']
    for i in range(num_images):
        rel = f'img_{i}' if i % 2 == 0 else f'sub/img_{i}'
        cls = 1 + i % num_classes
        _write_pair(root / 'images' / f'{rel}.jpg', root / 'masks' / f'{rel}.png', cls, i)
        rows.append(f'{rel}.jpg,class_{cls}')
    (root / 'tags.csv').write_text('\n'.join(rows) + '\n')
    return root
