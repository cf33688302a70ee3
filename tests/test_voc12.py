"""VOC2012 (+ SBD train_aug) on a tiny tree in the real layout (tests/fixtures/real_layouts.py)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from wsss_core.datasets.voc12 import VOC2012, VOC_CLASSES, VOC_SPLITS
from wsss_core.io import DataFileError, save_label_png
from wsss_core.registry import DATASETS, build

from fixtures.real_layouts import make_voc2012


@pytest.fixture
def voc(tmp_path):
    return make_voc2012(tmp_path / 'data')


@pytest.fixture
def cache(tmp_path):
    return tmp_path / 'cache'


def names(ds, index):
    return [VOC_CLASSES[c] for c in np.flatnonzero(ds.load_sample(index)['labels'])]


def files_under(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob('*'))


def test_constants():
    assert len(VOC_CLASSES) == 20
    assert (VOC_CLASSES[0], VOC_CLASSES[10], VOC_CLASSES[14], VOC_CLASSES[19]) == (
        'aeroplane', 'diningtable', 'person', 'tvmonitor')
    assert set(VOC_SPLITS) == {'train', 'val', 'test', 'train_aug', 'trainval', 'trainval_aug'}


def test_train_split_plain_list_palette_masks(voc, cache):
    ds = VOC2012(voc.root, split='train', label_cache=cache)
    assert ds.img_ids == ['2007_000032', '2007_000039']
    assert ds.records[0].seg_path == voc.root / 'SegmentationClass' / '2007_000032.png'
    s = ds.load_sample(0)
    assert set(s) == {'img', 'img_id', 'labels', 'gt_seg'}
    assert s['labels'].dtype == np.float32 and s['labels'].shape == (20,)
    assert names(ds, 0) == ['aeroplane', 'person']
    gt = s['gt_seg']
    assert gt.dtype == np.uint8 and gt.shape == (20, 30)
    assert (gt[5, 5], gt[12, 20], gt[1, 0], gt[19, 0]) == (1, 15, 255, 0)
    assert s['img'].shape == (20, 30, 3) and np.abs(s['img'][10, 10].astype(int)
                                                    - (200, 30, 30)).max() <= 8


def test_grayscale_jpeg_becomes_three_equal_channels(voc, cache):
    s = VOC2012(voc.root, split='train', label_cache=cache).load_sample(1)
    assert s['img'].shape == (20, 30, 3) and s['img'].dtype == np.uint8
    assert np.abs(s['img'].astype(int) - 128).max() <= 3
    assert names(VOC2012(voc.root, split='train', label_cache=cache), 1) == ['tvmonitor']


def test_train_aug_two_column_list_reads_segmentation_class_aug(voc, cache):
    ds = VOC2012(voc.root, split='train_aug', label_cache=cache)
    assert ds.list_path == voc.root / 'ImageSets' / 'SegmentationAug' / 'train_aug.txt'
    assert ds.img_ids == ['2007_000032', '2007_000039', '2008_000002']
    assert ds.records[2].seg_path == voc.root / 'SegmentationClassAug' / '2008_000002.png'
    s = ds.load_sample(2)   # the SBD image: CMYK JPEG, plain L mask
    assert np.abs(s['img'][0, 0].astype(int) - (255, 0, 0)).max() <= 8
    assert names(ds, 2) == ['bicycle', 'dog']
    assert (s['gt_seg'][0, 0], s['gt_seg'][15, 5], s['gt_seg'][15, 25]) == (2, 12, 0)


def test_palette_that_is_not_voc_still_reads_indices(voc, cache):
    s = VOC2012(voc.root, split='val', label_cache=cache).load_sample(0)
    assert np.unique(s['gt_seg']).tolist() == [0, 8]
    assert (s['gt_seg'][:, 0] == 0).all() and (s['gt_seg'][:, 1:] == 8).all()
    assert s['labels'].nonzero()[0].tolist() == [7]


def test_trainval_and_trainval_aug(voc, cache):
    assert VOC2012(voc.root, 'trainval', label_cache=cache).img_ids == [
        '2007_000032', '2007_000039', '2009_000001']
    assert len(VOC2012(voc.root, 'trainval_aug', label_cache=cache)) == 4


def test_test_split_image_without_mask_loads(voc, cache):
    ds = VOC2012(voc.root, split='test', label_cache=cache)
    s = ds.load_sample(0)
    assert s['img_id'] == '2008_000010' and 'gt_seg' not in s
    assert s['labels'].tolist() == [0.0] * 20 and ds.records[0].has_labels is False
    with pytest.raises(DataFileError, match=r"split 'test'.*no mask.*2008_000010.*require_labels"):
        VOC2012(voc.root, split='test', require_labels=True, label_cache=cache)


def test_missing_mask_on_a_training_split_is_an_error(voc, cache):
    (voc.root / 'SegmentationClass' / '2007_000039.png').unlink()
    with pytest.raises(DataFileError, match=r"split 'train'.*2007_000039"):
        VOC2012(voc.root, split='train', label_cache=cache)


@pytest.mark.parametrize('source', ['psa', 'irn', 'oaa'])
def test_labels_from_label_files_agree_with_masks(voc, cache, source):
    list_file, cls_file, kind = {
        'psa': (voc.psa / 'train_aug.txt', voc.psa / 'cls_labels.npy', 'cls_labels_npy'),
        'irn': (voc.irn / 'train_aug.txt', voc.irn / 'cls_labels.npy', 'cls_labels_npy'),
        'oaa': (voc.oaa / 'train_cls.txt', voc.oaa / 'train_cls.txt', 'train_cls_txt'),
    }[source]
    ds = VOC2012(voc.root, split='train_aug', list_file=list_file, labels_from=kind,
                 cls_labels_file=cls_file, label_cache=cache)
    assert [names(ds, i) for i in range(3)] == [['aeroplane', 'person'], ['tvmonitor'],
                                                 ['bicycle', 'dog']]
    assert ds.records[0].seg_path.parent.name == 'SegmentationClassAug'


def test_label_file_wins_over_masks(voc, cache, tmp_path):
    cls_file = tmp_path / 'mine_cls.txt'
    cls_file.write_text('2007_000032 3\n2007_000039 3 4\n')
    ds = VOC2012(voc.root, 'train', cls_labels_file=cls_file, label_cache=cache)
    assert names(ds, 0) == ['boat'] and names(ds, 1) == ['boat', 'bottle']
    # the mask is still the ground truth
    assert ds.load_sample(0)['gt_seg'][12, 20] == 15


def test_oaa_cls_file_beside_the_list_is_picked_up(voc, cache):
    (voc.root / 'ImageSets' / 'Segmentation' / 'train_cls.txt').write_text(
        '2007_000032 6\n2007_000039 6\n')
    assert names(VOC2012(voc.root, 'train', label_cache=cache), 0) == ['car']
    assert names(VOC2012(voc.root, 'train', labels_from='masks', label_cache=cache), 0) == [
        'aeroplane', 'person']


def test_missing_id_in_a_label_file_names_file_and_id(voc, cache):
    with pytest.raises(DataFileError, match=r'val_cls\.txt for image 2007_000032'):
        VOC2012(voc.root, 'train', labels_from='train_cls_txt',
                cls_labels_file=voc.oaa / 'val_cls.txt', label_cache=cache)
    with pytest.raises(DataFileError, match=r"expects a '\.npy' file"):
        VOC2012(voc.root, 'train', labels_from='cls_labels_npy',
                cls_labels_file=voc.oaa / 'val_cls.txt', label_cache=cache)


def test_split_placeholder_and_relative_paths_against_the_data_root(voc, cache):
    ds = VOC2012(voc.root, 'train_aug', list_file='ImageSets/SegmentationAug/{split}.txt',
                 label_cache=cache)
    assert len(ds) == 3


def test_saliency_aug(voc, cache):
    ds = VOC2012(voc.root, 'train_aug', saliency_dir='saliency_aug', label_cache=cache)
    assert [int(ds.load_sample(i)['saliency'][3, 3]) for i in range(3)] == [10, 20, 30]
    # the maps cover train_aug only: val (a test's split) is read without saliency
    val = VOC2012(voc.root, 'val', saliency_dir='saliency_aug', label_cache=cache)
    assert 'saliency' not in val.load_sample(0) and 'gt_seg' in val.load_sample(0)
    # trainval_aug holds the three train_aug images with maps and the val image without
    with pytest.raises(DataFileError, match=r"split 'trainval_aug': saliency map not found: "
                                            r'.*2009_000001\.png \(1 of 4 missing; .*cover part'):
        VOC2012(voc.root, 'trainval_aug', saliency_dir='saliency_aug', label_cache=cache)
    with pytest.raises(DataFileError, match='saliency directory not found: .*saliency$'):
        VOC2012(voc.root, 'train_aug', saliency_dir='saliency', label_cache=cache)


def test_pseudo_labels_from_another_directory(voc, cache, tmp_path):
    work = tmp_path / 'work' / 'labels'
    for value, img_id in enumerate(['2007_000032', '2007_000039'], start=3):
        save_label_png(work / f'{img_id}.png', np.full((20, 30), value, np.uint8))
    ds = VOC2012(voc.root, 'train', pseudo_label_dir=work, label_cache=cache)
    s = ds.load_sample(1)
    assert s['pseudo_seg'].dtype == np.uint8 and np.unique(s['pseudo_seg']).tolist() == [4]
    assert s['gt_seg'][10, 10] == 20   # the ground truth is still there
    (work / '2007_000039.png').unlink()
    with pytest.raises(DataFileError, match=r'pseudo label not found: .*2007_000039\.png'):
        VOC2012(voc.root, 'train', pseudo_label_dir=work, label_cache=cache)


def test_pseudo_label_of_the_wrong_size_is_named(voc, cache, tmp_path):
    work = tmp_path / 'pl'
    save_label_png(work / '2009_000001.png', np.zeros((5, 5), np.uint8))
    ds = VOC2012(voc.root, 'val', pseudo_label_dir=work, label_cache=cache)
    with pytest.raises(DataFileError, match=r'2009_000001\.png: pseudo-label size'):
        ds.load_sample(0)


def test_seg_dir_override_per_split(voc, cache):
    ds = VOC2012(voc.root, 'train', seg_dir={'train': 'SegmentationClassAug'}, label_cache=cache)
    assert ds.records[0].seg_path.parent.name == 'SegmentationClassAug'
    no_masks = VOC2012(voc.root, 'train', seg_dir=None, labels_from='none', label_cache=cache)
    assert 'gt_seg' not in no_masks.load_sample(0)


def test_auto_seg_dir_falls_back_to_aug_without_segmentation_class(voc, cache):
    for p in (voc.root / 'SegmentationClass').iterdir():
        p.unlink()
    (voc.root / 'SegmentationClass').rmdir()
    ds = VOC2012(voc.root, 'val', label_cache=cache)
    assert ds.records[0].seg_path == voc.root / 'SegmentationClassAug' / '2009_000001.png'


def test_unknown_split_lists_what_was_tried(voc):
    with pytest.raises(DataFileError, match=r"no image list for split 'tran'.*known splits: train,"
                                            r".*Segmentation/tran\.txt.*SegmentationAug/tran\.txt"):
        VOC2012(voc.root, 'tran')


def test_list_entry_outside_the_data_root_is_refused(voc):
    (voc.root / 'ImageSets' / 'Segmentation' / 'train.txt').write_text('2007_000032\n../x\n')
    with pytest.raises(DataFileError, match=r'train\.txt:2.*outside the data root'):
        VOC2012(voc.root, 'train')


def test_mask_value_outside_the_class_range_is_named(voc, cache):
    Image.fromarray(np.full((20, 30), 21, np.uint8)).save(
        voc.root / 'SegmentationClass' / '2007_000039.png')
    with pytest.raises(DataFileError, match=r'2007_000039\.png.*\[21\].*0\.\.20'):
        VOC2012(voc.root, 'train', label_cache=cache)


def test_the_data_root_is_never_written_to(voc, monkeypatch, tmp_path):
    monkeypatch.setenv('WSSS_CACHE', str(tmp_path / 'user_cache'))
    before = files_under(voc.root)
    ds = VOC2012(voc.root, 'trainval_aug')
    [ds.load_sample(i) for i in range(len(ds))]
    assert files_under(voc.root) == before
    assert len(list((tmp_path / 'user_cache' / 'mask_labels').glob('*.json'))) == 1   # one mask dir


def test_registered_and_built_from_config_with_stage_overrides(voc, cache):
    ds = build(dict(type='VOC2012', data_root=str(voc.root), label_cache=str(cache)), DATASETS,
               split='val', load_gt=False, max_samples=1, pipeline=None)
    assert isinstance(ds, VOC2012) and len(ds) == 1 and 'gt_seg' not in ds[0]
    meta = ds.metainfo
    assert meta['classes'][14] == 'person' and meta['num_classes'] == 20
    assert len(meta['palette']) == 21
    assert (meta['palette'][0], meta['palette'][1], meta['palette'][15], meta['palette'][20]) == (
        (0, 0, 0), (128, 0, 0), (192, 128, 128), (0, 64, 128))
    with pytest.raises(ValueError, match='20 classes, not num_classes=21'):
        VOC2012(voc.root, 'val', num_classes=21)
