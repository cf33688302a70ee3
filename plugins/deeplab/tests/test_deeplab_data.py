"""The reference augmentation and the segmentation training samples."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from wsss_deeplab.testing import TINY_GENERATOR, registered  # noqa: F401 (fixture)


def make_sample(h=30, w=40):
    rng = np.random.default_rng(0)
    return dict(img_id='a', img=rng.integers(0, 255, (h, w, 3)).astype(np.uint8),
                pseudo_seg=rng.integers(0, 4, (h, w)).astype(np.uint8),
                saliency=np.full((h, w), 200, np.uint8))


def test_random_scale_choice_uses_int_sizes_and_pil_nearest_labels(registered):
    from wsss_core.datasets.seg_transforms import RandomScaleChoice
    sample = make_sample()
    label = sample['pseudo_seg'].copy()
    torch.manual_seed(0)
    out = RandomScaleChoice(scales=(0.75,))(sample)
    assert out['img'].shape == (22, 30, 3) and out['pseudo_seg'].shape == (22, 30)   # int(s H)
    expected = np.asarray(Image.fromarray(label).resize((30, 22), Image.NEAREST))
    np.testing.assert_array_equal(out['pseudo_seg'], expected)
    drawn = {RandomScaleChoice().draw() for _ in range(200)}
    assert drawn == {0.5, 0.75, 1.0, 1.25, 1.5}


def test_pad_to_size_pads_bottom_right_with_mean_and_ignore(registered):
    from wsss_core.datasets.seg_transforms import PadToSize
    sample = make_sample(30, 40)
    img = sample['img'].copy()
    out = PadToSize(size=50, img_fill=(1, 2, 3))(sample)
    assert out['img'].shape == (50, 50, 3)
    np.testing.assert_array_equal(out['img'][:30, :40], img)
    assert (out['img'][30:] == [1, 2, 3]).all() and (out['img'][:, 40:] == [1, 2, 3]).all()
    assert (out['pseudo_seg'][30:] == 255).all() and (out['pseudo_seg'][:, 40:] == 255).all()
    assert (out['saliency'][30:] == 0).all()


def test_reference_pipeline_gives_321_crops(registered):
    from wsss_core.registry import TRANSFORMS, build
    from wsss_core.datasets.seg_transforms import deeplab_train_pipeline
    steps = [build(t, TRANSFORMS) for t in deeplab_train_pipeline(321)]
    torch.manual_seed(1)
    sample = make_sample(200, 150)
    for step in steps:
        sample = step(sample)
    assert sample['img'].shape == (3, 321, 321) and sample['img'].dtype == torch.uint8
    assert sample['pseudo_seg'].shape == (321, 321) and sample['pseudo_seg'].dtype == torch.long
    assert (sample['pseudo_seg'] == 255).any()    # at most 1.5 x 200 < 321: padding is ignored
    assert set(sample) == {'img_id', 'img', 'pseudo_seg'}


def test_segmentation_samples_read_pseudo_labels_and_name_missing_files(tmp_path, registered):
    from wsss_core.datasets import build_dataset
    from wsss_core.io import DataFileError, save_label_png
    from wsss_core.datasets.seg_samples import SegmentationSamples
    data = build_dataset(dict(type='SyntheticShapes', generator=dict(TINY_GENERATOR),
                              progress=False), split='val', load_gt=False)
    for rec in data.records[:-1]:
        save_label_png(tmp_path / f'{rec.img_id}.png', np.full((48, 48), 2, np.uint8))
    with pytest.raises(DataFileError, match=data.records[-1].img_id):
        SegmentationSamples(data, tmp_path)
    save_label_png(tmp_path / f'{data.records[-1].img_id}.png', np.full((48, 48), 1, np.uint8))
    samples = SegmentationSamples(data, tmp_path)
    sample = samples[0]
    assert (sample['pseudo_seg'] == 2).all() and 'gt_seg' not in sample
    save_label_png(tmp_path / f'{data.records[0].img_id}.png', np.full((48, 48), 9, np.uint8))
    with pytest.raises(DataFileError, match='outside'):
        samples[0]
    gt = SegmentationSamples(build_dataset(dict(type='SyntheticShapes',
                                                generator=dict(TINY_GENERATOR), progress=False),
                                           split='val'))
    assert gt.label_key == 'gt_seg' and gt[0]['gt_seg'].shape == (48, 48)
