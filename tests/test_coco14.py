"""COCO2014 in the WSSS form (VOC-style label PNGs, 80 classes) on tiny trees in the real layout."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from wsss_core.datasets import coco14
from wsss_core.datasets import label_formats
from wsss_core.datasets.coco14 import (COCO2014, COCO_CATEGORY_IDS, COCO_CLASSES,
                                       category_ids_to_labels)
from wsss_core.io import DataFileError
from wsss_core.registry import DATASETS, build

from fixtures.real_layouts import COCO_TRAIN, make_coco2014


@pytest.fixture
def cache(tmp_path):
    return tmp_path / 'cache'


def names(ds, index):
    return [COCO_CLASSES[c] for c in np.flatnonzero(ds.load_sample(index)['labels'])]


def files_under(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob('*'))


def test_class_constants():
    assert len(COCO_CLASSES) == 80 == len(set(COCO_CLASSES))
    assert (COCO_CLASSES[0], COCO_CLASSES[16], COCO_CLASSES[60], COCO_CLASSES[79]) == (
        'person', 'dog', 'dining table', 'toothbrush')
    assert len(COCO_CATEGORY_IDS) == 80 and COCO_CATEGORY_IDS[-1] == 90
    assert 12 not in COCO_CATEGORY_IDS and 26 not in COCO_CATEGORY_IDS


@pytest.mark.parametrize('nested', [True, False])
def test_train_split_labels_from_masks(tmp_path, cache, nested):
    root = make_coco2014(tmp_path, nested=nested)
    ds = COCO2014(root, 'train', label_cache=cache)
    assert ds.list_path == root / 'ImageSets' / 'train14.txt'
    assert ds.img_ids == list(COCO_TRAIN)
    sub = 'train2014/' if nested else ''
    assert str(ds.records[0].img_path).endswith(f'JPEGImages/{sub}COCO_train2014_000000000009.jpg')
    assert names(ds, 0) == ['person', 'toothbrush'] and names(ds, 1) == ['dog']
    s = ds.load_sample(0)
    assert s['labels'].shape == (80,) and s['labels'].dtype == np.float32
    assert (s['gt_seg'][0, 0], s['gt_seg'][15, 25], s['gt_seg'][19, 0], s['gt_seg'][15, 5]) == (
        1, 80, 255, 0)
    gray = ds.load_sample(1)['img']
    assert gray.shape == (20, 30, 3) and np.abs(gray.astype(int) - 90).max() <= 3


@pytest.mark.parametrize('split', ['val', 'val14', 'val2014'])
def test_val_two_column_list_and_cmyk_image(tmp_path, cache, split):
    root = make_coco2014(tmp_path)
    ds = COCO2014(root, split, label_cache=cache)
    assert ds.split == 'val' and ds.img_ids == ['COCO_val2014_000000000042']
    s = ds.load_sample(0)
    assert np.abs(s['img'][5, 5].astype(int) - (0, 255, 0)).max() <= 8
    assert s['labels'].sum() == 0 and (s['gt_seg'] == 0).all()   # background-only image


def test_test_split_without_masks(tmp_path, cache):
    root = make_coco2014(tmp_path)
    ds = COCO2014(root, 'test2014', label_cache=cache)
    s = ds.load_sample(0)
    assert 'gt_seg' not in s and s['labels'].sum() == 0
    assert s['img'].shape == (20, 30, 3)


def test_configurable_folder_names(tmp_path, cache):
    root = make_coco2014(tmp_path, img_dir='images', seg_dir='annotations_png')
    ds = COCO2014(root, 'train', img_dir='images', seg_dir='annotations_png', label_cache=cache)
    assert names(ds, 1) == ['dog']
    assert ds.records[1].seg_path == (root / 'annotations_png' / 'train2014'
                                      / 'COCO_train2014_000000000025.png')
    with pytest.raises(DataFileError, match=r'no mask under .*SegmentationClass.*'
                                            r'COCO_train2014_000000000009'):
        COCO2014(root, 'train', img_dir='images', label_cache=cache)


def test_explicit_split_subdir(tmp_path, cache):
    root = make_coco2014(tmp_path)
    ds = COCO2014(root, 'train', split_subdir={'train': 'train2014'}, label_cache=cache)
    assert ds.records[0].img_path.parent.name == 'train2014'
    flat = COCO2014(root, 'train', split_subdir=None, labels_from='none', seg_dir=None,
                    require_labels=False, label_cache=cache)
    assert flat.records[0].img_path.parent.name == 'JPEGImages'


def test_a_custom_list_mixing_splits_finds_each_subfolder(tmp_path, cache):
    root = make_coco2014(tmp_path)
    (root / 'ImageSets' / 'mini.txt').write_text(
        'COCO_val2014_000000000042\nCOCO_train2014_000000000025\n')
    ds = COCO2014(root, 'mini', label_cache=cache)
    assert [r.img_path.parent.name for r in ds.records] == ['val2014', 'train2014']
    assert names(ds, 1) == ['dog']


def test_label_cache_lives_outside_the_data_root_and_is_reused(tmp_path, monkeypatch):
    root = make_coco2014(tmp_path)
    monkeypatch.setenv('WSSS_CACHE', str(tmp_path / 'user_cache'))
    before = files_under(root)
    COCO2014(root, 'train')
    assert files_under(root) == before
    assert len(list((tmp_path / 'user_cache' / 'mask_labels').glob('*.json'))) == 1

    def no_reading(*args, **kwargs):
        raise AssertionError('labels should come from the cache')
    monkeypatch.setattr(label_formats, 'read_label_png', no_reading)
    assert names(COCO2014(root, 'train', load_gt=False), 0) == ['person', 'toothbrush']


def test_mask_value_beyond_80_is_named(tmp_path, cache):
    root = make_coco2014(tmp_path, nested=False)
    Image.fromarray(np.full((20, 30), 81, np.uint8)).save(
        root / 'SegmentationClass' / 'COCO_train2014_000000000025.png')
    with pytest.raises(DataFileError, match=r'COCO_train2014_000000000025\.png.*\[81\].*0\.\.80'):
        COCO2014(root, 'train', label_cache=cache)


def test_category_id_masks_convert_to_contiguous_labels():
    mask = np.array([[0, 1, 13, 90], [255, 27, 67, 11]], np.uint8)
    assert category_ids_to_labels(mask).tolist() == [[0, 1, 12, 80], [255, 25, 61, 11]]
    with pytest.raises(DataFileError, match=r'm\.png: value\(s\) \[12, 26\]'):
        category_ids_to_labels(np.array([12, 26, 1]), source='m.png')


def test_labels_from_a_coco_label_file(tmp_path, cache):
    root = make_coco2014(tmp_path)
    labels = tmp_path / 'cls_labels_coco.npy'
    vec = np.zeros(80, np.float32)
    vec[[2, 7]] = 1
    np.save(labels, np.array({i: vec for i in COCO_TRAIN}, dtype=object), allow_pickle=True)
    ds = COCO2014(root, 'train', cls_labels_file=labels, label_cache=cache)
    assert names(ds, 0) == ['car', 'truck']


def test_registered_and_built_with_stage_overrides(tmp_path, cache):
    root = make_coco2014(tmp_path)
    ds = build(dict(type='COCO2014', data_root=str(root), label_cache=str(cache)), DATASETS,
               split='train', load_gt=False, max_samples=1)
    assert isinstance(ds, COCO2014) and len(ds) == 1 and 'gt_seg' not in ds[0]
    assert ds.metainfo['num_classes'] == 80 and len(ds.metainfo['palette']) == 81
    assert coco14.COCO_SPLIT_FOLDERS['val'] == 'val2014'
