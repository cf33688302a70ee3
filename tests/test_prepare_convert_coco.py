"""COCO instances -> class PNGs: a generated instances JSON, checked pixel by pixel.

Polygons with integer corners cover the pixels [x0, x1) x [y0, y1) (pycocotools'
rasterisation of an axis-aligned rectangle); every expected mask below is drawn by hand
from that and the painting rules (crowds first, then the instances from the largest to
the smallest).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

mask_api = pytest.importorskip('pycocotools.mask')

from wsss_core.datasets.coco14 import COCO2014  # noqa: E402
from wsss_core.io import IGNORE_INDEX, DataFileError  # noqa: E402
from wsss_core.prepare.convert.coco import coco_class_masks  # noqa: E402

H, W = 10, 12
PERSON, CAR, DOG, TOOTHBRUSH = 1, 3, 18, 90          # COCO category ids
CATEGORIES = [dict(id=1, name='person'), dict(id=3, name='car'), dict(id=18, name='dog'),
              dict(id=90, name='toothbrush')]
#: labels: 1 + position among the 80 sorted COCO ids (12 is unused, so dog 18 -> 17)
L_PERSON, L_CAR, L_DOG = 1, 3, 17


def rect(x0, y0, x1, y1) -> np.ndarray:
    region = np.zeros((H, W), bool)
    region[y0:y1, x0:x1] = True
    return region


def polygon(x0, y0, x1, y1) -> list:
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def uncompressed_rle(region: np.ndarray) -> dict:
    """Run lengths over the column-major pixels, starting with a run of zeros."""
    flat = region.flatten(order='F').astype(int)
    counts, current, run = [], 0, 0
    for value in flat:
        if value != current:
            counts.append(run)
            current, run = value, 0
        run += 1
    counts.append(run)
    return dict(size=[H, W], counts=counts)


def compressed_rle(region: np.ndarray) -> dict:
    rle = mask_api.encode(np.asfortranarray(region.astype(np.uint8)))
    return dict(size=rle['size'], counts=rle['counts'].decode('ascii'))


def image(image_id):
    return dict(id=image_id, file_name=f'COCO_train2014_{image_id:012d}.jpg', height=H, width=W)


def instances(tmp_path, categories=CATEGORIES):
    anns = [
        # listed first but smaller than the person it lies on: must stay on top
        dict(id=101, image_id=42, category_id=DOG, iscrowd=0,
             segmentation=compressed_rle(rect(3, 2, 6, 5))),
        dict(id=102, image_id=42, category_id=PERSON, iscrowd=0,
             segmentation=[polygon(1, 1, 9, 8)]),
        dict(id=103, image_id=42, category_id=CAR, iscrowd=1,
             segmentation=uncompressed_rle(rect(7, 6, 12, 10))),
        # a part of four numbers is no polygon (pycocotools would read it as a box)
        dict(id=104, image_id=42, category_id=TOOTHBRUSH, iscrowd=0,
             segmentation=[[0, 0, 1, 1]]),
        dict(id=105, image_id=42, category_id=CAR, iscrowd=0,
             segmentation=[polygon(10, 0, 12, 2), polygon(0, 9, 2, 10)]),
        dict(id=106, image_id=7, category_id=PERSON, iscrowd=1,
             segmentation=uncompressed_rle(rect(0, 0, 4, 3))),
    ]
    data = dict(images=[image(42), image(7), image(9)], annotations=anns,
                categories=categories)
    path = tmp_path / 'instances_train2014.json'
    path.write_text(json.dumps(data))
    return path


def expected_42(crowd_value):
    label = np.zeros((H, W), np.uint8)
    if crowd_value is not None:
        label[rect(7, 6, 12, 10)] = crowd_value
    label[rect(1, 1, 9, 8)] = L_PERSON                      # area 56
    label[rect(3, 2, 6, 5)] = L_DOG                         # area 9
    label[rect(10, 0, 12, 2) | rect(0, 9, 2, 10)] = L_CAR   # area 6
    return label


def read(path) -> np.ndarray:
    with Image.open(path) as img:
        assert img.mode == 'P'
        return np.array(img)


@pytest.mark.parametrize('crowd, value', [('ignore', IGNORE_INDEX), ('class', L_CAR),
                                          ('skip', None)])
def test_masks_match_the_hand_drawn_expectation(tmp_path, crowd, value):
    out = tmp_path / 'masks'
    written = coco_class_masks(instances(tmp_path), out, crowd=crowd)
    assert written == ['COCO_train2014_000000000007', 'COCO_train2014_000000000009',
                       'COCO_train2014_000000000042']             # by image id
    np.testing.assert_array_equal(read(out / 'COCO_train2014_000000000042.png'),
                                  expected_42(value))
    crowd_only = np.zeros((H, W), np.uint8)
    crowd_only[rect(0, 0, 4, 3)] = {'ignore': IGNORE_INDEX, 'class': L_PERSON}.get(crowd, 0)
    np.testing.assert_array_equal(read(out / 'COCO_train2014_000000000007.png'), crowd_only)
    assert not read(out / 'COCO_train2014_000000000009.png').any()   # no annotations


def test_coco2014_reads_the_converted_masks(tmp_path):
    root = tmp_path / 'coco2014'
    stems = coco_class_masks(instances(tmp_path), root / 'SegmentationClass')
    (root / 'JPEGImages').mkdir()
    for stem in stems:
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(root / 'JPEGImages' / f'{stem}.jpg')
    (root / 'ImageSets').mkdir()
    (root / 'ImageSets' / 'train14.txt').write_text('\n'.join(stems) + '\n')
    dataset = COCO2014(root, split='train', label_cache=False)
    sample = dataset.load_sample(stems.index('COCO_train2014_000000000042'))
    np.testing.assert_array_equal(sample['gt_seg'], expected_42(IGNORE_INDEX))
    assert np.flatnonzero(sample['labels']).tolist() == [L_PERSON - 1, L_CAR - 1, L_DOG - 1]
    assert dataset.class_names[L_DOG - 1] == 'dog'


def test_image_selection_and_category_checks(tmp_path):
    path = instances(tmp_path)
    out = tmp_path / 'sel'
    assert coco_class_masks(path, out, image_ids=[42, 'COCO_train2014_000000000007']) == [
        'COCO_train2014_000000000042', 'COCO_train2014_000000000007']
    assert sorted(p.name for p in out.iterdir()) == ['COCO_train2014_000000000007.png',
                                                     'COCO_train2014_000000000042.png']
    with pytest.raises(DataFileError, match=r'no image \[5\]'):
        coco_class_masks(path, out, image_ids=[5])
    wrong_name = [dict(c, name='cat') if c['id'] == DOG else c for c in CATEGORIES]
    with pytest.raises(DataFileError, match="id 18 is 'cat' here but 'dog'"):
        coco_class_masks(instances(tmp_path, wrong_name), out)
    with pytest.raises(DataFileError, match='id 12'):
        coco_class_masks(instances(tmp_path, CATEGORIES + [dict(id=12, name='street sign')]),
                         out)
    with pytest.raises(DataFileError, match='not a COCO instances file'):
        (tmp_path / 'x.json').write_text('{"images": []}')
        coco_class_masks(tmp_path / 'x.json', out)
