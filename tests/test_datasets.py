"""VOC-layout reader and the training transforms."""
from __future__ import annotations

import numpy as np
import torch

from wsss_core.datasets import VOCLayoutDataset
from wsss_core.datasets.transforms import PackInputs, RandomHorizontalFlip, RandomPadCrop

from test_bad_input import make_voc


def test_labels_from_masks_and_from_cls_file_agree(tmp_path):
    root = make_voc(tmp_path / 'voc', ids=('a', 'b'), mask_value=2)
    from_masks = VOCLayoutDataset(root, num_classes=3)
    (root / 'ImageSets' / 'Segmentation' / 'train_cls.txt').write_text('a 1\nb 1\n')
    from_file = VOCLayoutDataset(root, num_classes=3)
    assert [r.class_ids for r in from_masks.records] == [(1,), (1,)]
    assert [r.class_ids for r in from_file.records] == [(1,), (1,)]
    sample = from_file[0]
    assert sample['labels'].tolist() == [0.0, 1.0, 0.0]
    assert sample['gt_seg'].max() == 2 and sample['img'].shape == (8, 10, 3)


def _position_sample():
    h, w = 12, 16
    yy, xx = np.mgrid[:h, :w]
    code = (yy * w + xx).astype(np.int64)
    img = np.stack([code % 256, code // 256, np.zeros_like(code)], -1).astype(np.uint8)
    return dict(img_id='p', img=img, gt_seg=(code % 200).astype(np.uint8),
                labels=np.array([1, 0], np.float32))


def test_crop_and_flip_keep_image_and_mask_aligned():
    torch.manual_seed(0)
    for _ in range(10):
        s = RandomHorizontalFlip(prob=0.5)(RandomPadCrop(size=10, pad=0)(_position_sample()))
        code = s['img'][..., 0].astype(np.int64) + 256 * s['img'][..., 1].astype(np.int64)
        assert s['img'].shape[:2] == s['gt_seg'].shape == (10, 10)
        assert np.array_equal(code % 200, s['gt_seg'])


def test_pad_crop_fills_labels_with_ignore():
    torch.manual_seed(1)
    s = RandomPadCrop(size=20, pad=0)(_position_sample())   # larger than the 12x16 input
    assert s['img'].shape[:2] == (20, 20)
    assert (s['gt_seg'] == 255).sum() == 20 * 20 - 12 * 16


def test_pack_inputs_types():
    out = PackInputs(keys=('img', 'labels', 'gt_seg'))(_position_sample())
    assert out['img'].shape == (3, 12, 16) and out['img'].dtype == torch.uint8
    assert out['labels'].dtype == torch.float32 and out['gt_seg'].dtype == torch.int64


def test_rescale_picks_label_pixels_like_pil_nearest():
    from PIL import Image
    from wsss_core.datasets.transforms import RandomRescale
    gt = (np.arange(100 * 60).reshape(60, 100) % 251).astype(np.uint8)
    torch.manual_seed(0)
    for _ in range(5):
        s = RandomRescale((0.3, 1.7))(dict(img=np.zeros((60, 100, 3), np.uint8), gt_seg=gt.copy()))
        h, w = s['gt_seg'].shape
        expected = np.asarray(Image.fromarray(gt).resize((w, h), Image.NEAREST))
        assert np.array_equal(s['gt_seg'], expected)


def test_resize_short_side_keeps_aspect_like_oaa_resize_short():
    from wsss_core.datasets.transforms import Resize
    gt = (np.arange(375 * 500) % 7).astype(np.uint8).reshape(375, 500)
    s = Resize(short_side=224)(dict(img=np.zeros((375, 500, 3), np.uint8), gt_seg=gt))
    # docs/methods/oaa.md#22-classifier-architecture: 500x375 -> 299x224
    assert s['img'].shape == (224, 299, 3)
    assert s['gt_seg'].shape == (224, 299)
    assert set(np.unique(s['gt_seg'])) <= set(range(7))   # nearest: no new label values
    portrait = Resize(short_side=224)(dict(img=np.zeros((500, 333, 3), np.uint8)))
    assert portrait['img'].shape == (336, 224, 3)


def test_resize_to_fixed_size_and_argument_errors():
    import pytest
    from wsss_core.datasets.transforms import Resize
    s = Resize(size=(256, 256))(dict(img=np.zeros((375, 500, 3), np.uint8),
                                     saliency=np.zeros((375, 500), np.uint8)))
    assert s['img'].shape == (256, 256, 3) and s['saliency'].shape == (256, 256)
    with pytest.raises(ValueError, match='exactly one'):
        Resize(short_side=224, size=(256, 256))
    with pytest.raises(ValueError, match='interpolation'):
        Resize(short_side=224, interpolation='lanczos9')


def test_color_jitter_changes_colours_reproducibly_and_keeps_shape():
    import torch
    from wsss_core.datasets.transforms import ColorJitter
    img = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    jitter = ColorJitter(0.3, 0.3, 0.3, 0.1)
    torch.manual_seed(3)
    a = jitter(dict(img=img.copy()))['img']
    torch.manual_seed(3)
    b = jitter(dict(img=img.copy()))['img']
    assert a.dtype == np.uint8 and a.shape == img.shape
    assert np.array_equal(a, b) and not np.array_equal(a, img)
    same = ColorJitter()(dict(img=img.copy()))['img']
    assert np.array_equal(same, img)


def test_random_long_side_and_mean_padding_like_psa():
    import torch
    from wsss_core.datasets.transforms import RandomLongSide, RandomPadCrop
    torch.manual_seed(0)
    sides = set()
    for _ in range(20):
        s = RandomLongSide(256, 260)(dict(img=np.zeros((375, 500, 3), np.uint8),
                                          gt_seg=np.ones((375, 500), np.uint8)))
        h, w = s['img'].shape[:2]
        assert 256 <= w <= 260 and abs(h / w - 0.75) < 0.01 and s['gt_seg'].shape == (h, w)
        sides.add(w)
    assert len(sides) > 1
    img = np.full((10, 10, 3), 7, np.uint8)
    out = RandomPadCrop(size=16, img_pad_mode='mean')(dict(img=img, gt_seg=np.ones((10, 10), np.uint8)))
    assert out['img'].shape == (16, 16, 3)
    pad = (out['gt_seg'] == 255)
    assert pad.any() and (out['img'][pad] == (124, 116, 104)).all()
    assert (out['img'][~pad] == 7).all()
    import pytest
    with pytest.raises(ValueError, match='img_pad_mode'):
        RandomPadCrop(img_pad_mode='wrap')


def test_valid_mask_marks_the_image_pixels_after_rescale_flip_and_padded_crop():
    from wsss_core.datasets.transforms import MarkValidPixels, RandomLongSide
    torch.manual_seed(2)
    for _ in range(5):
        s = MarkValidPixels()(_position_sample())
        s = RandomLongSide(low=10, high=14)(s)
        size = s['img'].shape[:2]
        s = RandomPadCrop(size=20, pad=0, img_pad_mode='mean')(RandomHorizontalFlip()(s))
        valid = s['valid'].astype(bool)
        assert valid.sum() == size[0] * size[1]          # every image pixel, nothing else
        assert (s['img'][~valid] == (124, 116, 104)).all()
        assert (s['gt_seg'][~valid] == 255).all() and (s['gt_seg'][valid] != 255).all()
