"""SBD .mat masks -> PNGs and the VOC + SBD merge: a tiny VOC tree, SBD-structured .mat files."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

scipy_io = pytest.importorskip('scipy.io')
import scipy.sparse  # noqa: E402

from wsss_core.datasets.label_formats import load_cls_labels_npy, read_list  # noqa: E402
from wsss_core.datasets.voc12 import VOC2012  # noqa: E402
from wsss_core.io import DataFileError  # noqa: E402
from wsss_core.prepare.convert.sbd import (merge_voc_sbd, read_sbd_class_mask,  # noqa: E402
                                           sbd_mat_to_png, voc_xml_class_ids)
from wsss_core.testing.layouts import TREE_HW, voc_tree  # noqa: E402

H, W = TREE_HW
VOC_IDS = [f'2007_{i:06d}' for i in range(6)]
VOC_TRAIN, VOC_VAL = VOC_IDS[:3], VOC_IDS[3:]


def write_sbd_mat(path, seg: np.ndarray) -> None:
    """A cls/<id>.mat as SBD ships it: struct GTcls with Segmentation, Boundaries (a 20x1
    cell of sparse maps) and CategoriesPresent."""
    boundaries = np.empty((20, 1), dtype=object)
    for i in range(20):
        boundaries[i, 0] = scipy.sparse.csc_matrix(seg.shape, dtype=np.float64)
    present = np.array([[v] for v in np.unique(seg) if v], dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy_io.savemat(path, {'GTcls': {'Segmentation': seg.astype(np.uint8),
                                      'Boundaries': boundaries,
                                      'CategoriesPresent': present}})


def box_mask(cls: int, top: int, left: int) -> np.ndarray:
    seg = np.zeros((H, W), np.uint8)
    seg[top:top + 6, left:left + 9] = cls
    return seg


def write_xml(path, names) -> None:
    objects = ''.join(f'<object><name>{n}</name><difficult>{int(n == "dog")}</difficult>'
                      f'<part><name>head</name></part></object>' for n in names)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'<annotation><filename>x.jpg</filename>{objects}</annotation>')


@pytest.fixture
def trees(tmp_path):
    """VOC: 6 images (train 0-2, val 3-5); SBD: train {2008_000010, 2007_000001 (VOC train),
    2007_000003 (VOC val)}, val {2008_000011}; two SBD-only images added to JPEGImages."""
    voc = tmp_path / 'VOC2012'
    shutil.copytree(voc_tree(6), voc)
    lists = voc / 'ImageSets' / 'Segmentation'
    (lists / 'train.txt').write_text('\n'.join(VOC_TRAIN) + '\n')
    (lists / 'val.txt').write_text('\n'.join(VOC_VAL) + '\n')
    sbd = tmp_path / 'SBD' / 'benchmark_RELEASE' / 'dataset'
    sbd_masks = {'2008_000010': box_mask(12, 2, 3), '2008_000011': box_mask(7, 10, 20),
                 '2007_000001': box_mask(9, 0, 0), '2007_000003': box_mask(9, 0, 0)}
    for img_id, seg in sbd_masks.items():
        write_sbd_mat(sbd / 'cls' / f'{img_id}.mat', seg)
        if img_id.startswith('2008'):
            Image.fromarray(np.full((H, W, 3), 80, np.uint8)).save(
                voc / 'JPEGImages' / f'{img_id}.jpg')
    (sbd / 'train.txt').write_text('2008_000010\n2007_000001\n2007_000003\n')
    (sbd / 'val.txt').write_text('2008_000011\n')
    # psa's labels come from the XML: dog (difficult) + person; the mask (12) holds the dog only
    write_xml(voc / 'Annotations' / '2008_000010.xml', ['dog', 'person'])
    return voc, tmp_path / 'SBD', sbd_masks


def voc_mask(voc, img_id) -> np.ndarray:
    with Image.open(voc / 'SegmentationClass' / f'{img_id}.png') as img:
        return np.array(img)


def test_read_sbd_class_mask_and_png(tmp_path):
    seg = box_mask(15, 1, 2)
    write_sbd_mat(tmp_path / 'cls' / 'a.mat', seg)
    np.testing.assert_array_equal(read_sbd_class_mask(tmp_path / 'cls' / 'a.mat'), seg)
    out = sbd_mat_to_png(tmp_path / 'cls' / 'a.mat', tmp_path / 'a.png')
    with Image.open(tmp_path / 'a.png') as img:
        assert img.mode == 'P'
        np.testing.assert_array_equal(np.array(img), seg)
    np.testing.assert_array_equal(out, seg)


def test_bad_mat_files_are_named(tmp_path):
    scipy_io.savemat(tmp_path / 'other.mat', {'GTinst': {'Segmentation': np.zeros((2, 2))}})
    with pytest.raises(DataFileError, match=r"other\.mat: no GTcls\.Segmentation.*'GTinst'"):
        read_sbd_class_mask(tmp_path / 'other.mat')
    write_sbd_mat(tmp_path / 'bad.mat', box_mask(30, 0, 0))
    with pytest.raises(DataFileError, match=r'bad\.mat: class value\(s\) \[30\]'):
        read_sbd_class_mask(tmp_path / 'bad.mat')
    (tmp_path / 'junk.mat').write_bytes(b'not a mat file at all')
    with pytest.raises(DataFileError, match='junk.mat'):
        read_sbd_class_mask(tmp_path / 'junk.mat')


def test_voc_xml_labels_take_every_object_class(tmp_path):
    write_xml(tmp_path / 'a.xml', ['dog', 'person', 'dog', 'unicorn'])
    assert voc_xml_class_ids(tmp_path / 'a.xml') == {11, 14}    # dog, person (0-based)


def test_merge_writes_lists_masks_and_labels(trees):
    voc, sbd_root, sbd_masks = trees
    report = merge_voc_sbd(voc, sbd_root)
    train_aug = ['2007_000000', '2007_000001', '2007_000002', '2008_000010', '2008_000011']
    trainval_aug = train_aug[:3] + VOC_VAL + train_aug[3:]
    lists = voc / 'ImageSets' / 'SegmentationAug'
    assert read_list(lists / 'train_aug.txt') == train_aug
    assert read_list(lists / 'trainval_aug.txt') == trainval_aug
    assert (lists / 'train_aug.txt').read_text().splitlines()[0] == \
        '/JPEGImages/2007_000000.jpg /SegmentationClassAug/2007_000000.png'
    assert (report.train_aug, report.trainval_aug) == (5, 8)
    assert (report.masks_from_voc, report.masks_from_sbd) == (6, 2)

    def aug(img_id):
        with Image.open(voc / 'SegmentationClassAug' / f'{img_id}.png') as img:
            assert img.mode == 'P'
            return np.array(img)

    for img_id in VOC_IDS:        # VOC's mask wins, also where SBD has one (000001, 000003)
        np.testing.assert_array_equal(aug(img_id), voc_mask(voc, img_id))
    for img_id in ('2008_000010', '2008_000011'):
        np.testing.assert_array_equal(aug(img_id), sbd_masks[img_id])

    labels = load_cls_labels_npy(voc / 'cls_labels.npy', 20)
    assert sorted(labels) == trainval_aug
    assert np.flatnonzero(labels['2008_000010']).tolist() == [11, 14]   # from the XML
    assert np.flatnonzero(labels['2008_000011']).tolist() == [6]        # mask class 7
    for i, img_id in enumerate(VOC_IDS):                                # voc_tree: 1 + i
        assert np.flatnonzero(labels[img_id]).tolist() == [i]
    assert (report.labels_from_xml, report.labels_from_masks) == (1, 7)


def test_voc2012_reads_the_merged_train_aug(trees):
    voc, sbd_root, sbd_masks = trees
    merge_voc_sbd(voc, sbd_root / 'benchmark_RELEASE')
    dataset = VOC2012(voc, split='train_aug', label_cache=False)
    assert [r.img_id for r in dataset.records] == [
        '2007_000000', '2007_000001', '2007_000002', '2008_000010', '2008_000011']
    sample = dataset.load_sample(3)
    np.testing.assert_array_equal(sample['gt_seg'], sbd_masks['2008_000010'])
    assert np.flatnonzero(sample['labels']).tolist() == [11]            # from the mask: dog
    npy = VOC2012(voc, split='train_aug', labels_from='cls_labels_npy', label_cache=False)
    assert np.flatnonzero(npy.load_sample(3)['labels']).tolist() == [11, 14]


def test_merge_refuses_missing_images_and_masks(trees):
    voc, sbd_root, _ = trees
    (voc / 'JPEGImages' / '2008_000011.jpg').unlink()
    with pytest.raises(DataFileError, match='no image for 2008_000011'):
        merge_voc_sbd(voc, sbd_root)
    Image.fromarray(np.zeros((H, W + 1, 3), np.uint8)).save(voc / 'JPEGImages' / '2008_000011.jpg')
    with pytest.raises(DataFileError, match=r'mask of 2008_000011 is 24x32 .* 24x33'):
        merge_voc_sbd(voc, sbd_root)
    with pytest.raises(DataFileError, match='SBD not found'):
        merge_voc_sbd(voc, voc)
