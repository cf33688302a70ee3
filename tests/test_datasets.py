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
