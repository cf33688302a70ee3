"""Saliency sources (disk, dataset, OpenCV estimators) and the generic saliency fusion."""
from __future__ import annotations

import logging
import pickle

import numpy as np
import pytest

from wsss_core.io import DataFileError, save_gray_png
from wsss_core.refiners.saliency_fusion import SaliencyFusion
from wsss_core.registry import SALIENCY_SOURCES, build
from wsss_core.saliency import (FineGrainedSaliency, SaliencyFromDataset, SaliencyFromDisk,
                                SpectralResidualSaliency, to_uint8)


def square_image(h=120, w=160):
    """A bright square on a flat dark background, and the square's mask."""
    img = np.full((h, w, 3), 50, np.uint8)
    mask = np.zeros((h, w), bool)
    mask[h // 3: h // 3 + h // 4, w // 3: w // 3 + w // 4] = True
    img[mask] = (230, 220, 210)
    return img, mask


# ----------------------------------------------------------------------------- disk
def test_disk_source_reads_the_map(tmp_path):
    sal = np.arange(12 * 16, dtype=np.uint8).reshape(12, 16)
    save_gray_png(tmp_path / 'img_1.png', sal)
    src = SaliencyFromDisk(tmp_path)
    out = src('img_1', np.zeros((12, 16, 3), np.uint8))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, sal)
    assert src.resized == 0
    save_gray_png(tmp_path / 'img_2.sal.png', sal)
    assert SaliencyFromDisk(tmp_path, suffix='.sal.png')('img_2', np.zeros((12, 16, 3))).shape \
        == (12, 16)


def test_disk_source_resizes_with_one_warning_and_counts(tmp_path, caplog):
    for name in ('a', 'b', 'c'):
        save_gray_png(tmp_path / f'{name}.png', np.full((6, 8), 200, np.uint8))
    src = SaliencyFromDisk(tmp_path)
    img = np.zeros((12, 16, 3), np.uint8)
    with caplog.at_level(logging.WARNING, logger='wsss_core.saliency.from_disk'):
        outs = [src(name, img) for name in ('a', 'b', 'c')]
    assert all(o.shape == (12, 16) and o.dtype == np.uint8 for o in outs)
    assert (outs[0] == 200).all()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    msg = warnings[0].getMessage()
    assert 'a.png' in msg and '6x8' in msg and '12x16' in msg
    assert src.resized == 3


def test_disk_source_names_a_missing_file(tmp_path):
    src = SaliencyFromDisk(tmp_path / 'sal')
    with pytest.raises(DataFileError, match=r'sal/nope\.png'):
        src('nope', np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DataFileError, match='plain image id'):
        src('../etc', np.zeros((4, 4, 3), np.uint8))


def test_sources_build_from_the_registry(tmp_path):
    src = build(dict(type='SaliencyFromDisk', root=str(tmp_path)), SALIENCY_SOURCES)
    assert isinstance(src, SaliencyFromDisk) and src.root == tmp_path
    for name in ('SaliencyFromDataset', 'SpectralResidualSaliency', 'FineGrainedSaliency'):
        assert SALIENCY_SOURCES.get(name) is not None


# ----------------------------------------------------------------------------- OpenCV
@pytest.mark.parametrize('cls', [SpectralResidualSaliency, FineGrainedSaliency])
def test_opencv_estimators_find_a_bright_square(cls):
    img, mask = square_image()
    src = cls()
    sal = src('sq', img)
    assert sal.dtype == np.uint8 and sal.shape == img.shape[:2]
    assert sal.max() == 255  # min-max scaled
    assert sal[mask].mean() > 1.5 * sal[~mask].mean()
    assert (src('flat', np.full((30, 40, 3), 77, np.uint8)) == 0).all()
    restored = pickle.loads(pickle.dumps(src))  # picklable after use (for worker pools)
    np.testing.assert_array_equal(restored('sq', img), sal)


def test_opencv_estimators_reject_bad_images():
    with pytest.raises(ValueError, match='uint8'):
        SpectralResidualSaliency()('x', np.zeros((10, 10), np.uint8))


def test_to_uint8_scales_min_max():
    np.testing.assert_array_equal(to_uint8(np.array([[1.0, 2.0, 3.0]])), [[0, 128, 255]])
    assert (to_uint8(np.full((2, 2), 5.0)) == 0).all()


# ----------------------------------------------------------------------------- fusion
def fusion_sample():
    """2x3 image: column 0 and 1 salient in row 0; class 4 wins column 0, class 1 elsewhere."""
    cams = np.array([[[0.9, 0.2, 0.1],       # class 1 (label 2)
                      [0.0, 0.8, 0.3]],
                     [[0.95, 0.1, 0.05],     # class 4 (label 5)
                      [0.9, 0.1, 0.2]]], np.float32)
    saliency = np.array([[255, 128, 127],
                         [0, 200, 10]], np.uint8)
    return dict(img_id='t', cams=cams, class_ids=np.array([1, 4]), saliency=saliency,
                img=np.zeros((2, 3, 3), np.uint8))


def test_fusion_truth_table():
    # S/255 >= 0.5 -> class of the CAM argmax (+1); below -> background.
    out = SaliencyFusion(threshold=0.5)(fusion_sample())['label']
    np.testing.assert_array_equal(out, [[5, 2, 0],
                                        [0, 2, 0]])
    assert out.dtype == np.uint8
    low = SaliencyFusion(threshold=0.03)(fusion_sample())['label']
    np.testing.assert_array_equal(low, [[5, 2, 2], [0, 2, 2]])


def test_fusion_without_cams_is_all_background():
    sample = fusion_sample()
    sample.update(cams=np.zeros((0, 2, 3), np.float32), class_ids=np.zeros(0, np.int64))
    assert (SaliencyFusion()(sample)['label'] == 0).all()


def test_fusion_shape_mismatch_and_missing_saliency():
    sample = fusion_sample()
    sample['saliency'] = np.zeros((3, 3), np.uint8)
    with pytest.raises(ValueError, match='saliency of t'):
        SaliencyFusion()(sample)
    sample.pop('saliency')
    with pytest.raises(KeyError, match='saliency'):
        SaliencyFusion()(sample)
    with pytest.raises(KeyError, match='no saliency map'):
        SaliencyFromDataset().from_sample(sample)
    with pytest.raises(TypeError, match='from_sample'):
        SaliencyFromDataset()('t', sample['img'])


def test_fusion_source_none_and_from_dataset_agree():
    default = SaliencyFusion(threshold=0.4)
    with_source = SaliencyFusion(threshold=0.4, source=dict(type='SaliencyFromDataset'))
    assert default.needs == ('saliency',) and with_source.needs == ('saliency',)
    np.testing.assert_array_equal(default(fusion_sample())['label'],
                                  with_source(fusion_sample())['label'])


def test_fusion_with_a_disk_source_needs_the_image(tmp_path):
    sample = fusion_sample()
    save_gray_png(tmp_path / 't.png', sample.pop('saliency'))
    fusion = SaliencyFusion(source=dict(type='SaliencyFromDisk', root=str(tmp_path)))
    assert fusion.needs == ('img',)
    np.testing.assert_array_equal(fusion(dict(sample))['label'],
                                  SaliencyFusion()(fusion_sample())['label'])
    sample.pop('img')
    with pytest.raises(KeyError, match='img'):
        fusion(sample)


def test_fusion_with_an_estimator_on_a_square():
    img, mask = square_image(40, 60)
    cams = np.ones((1, 40, 60), np.float32)
    fusion = SaliencyFusion(threshold=0.1, source=SpectralResidualSaliency())
    label = fusion(dict(img_id='sq', img=img, cams=cams, class_ids=np.array([0])))['label']
    assert set(np.unique(label)) <= {0, 1}
    assert (label[mask] == 1).mean() > (label[~mask] == 1).mean()


def test_fusion_source_from_the_dataset_on_synthetic_shapes(tiny_data_cfg):
    from wsss_core.datasets import build_dataset
    ds = build_dataset(dict(tiny_data_cfg, workers=0), split='train', load_gt=False)
    raw = ds.load_sample(0)
    rng = np.random.default_rng(0)
    k = 2
    sample = dict(img_id=raw['img_id'], img=raw['img'], saliency=raw['saliency'],
                  cams=rng.random((k, *raw['img'].shape[:2])).astype(np.float32),
                  class_ids=np.arange(k))
    a = SaliencyFusion()(dict(sample))['label']
    b = SaliencyFusion(source=dict(type='SaliencyFromDataset'))(dict(sample))['label']
    np.testing.assert_array_equal(a, b)
    assert (a == 0).any() and (a > 0).any()
