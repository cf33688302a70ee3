"""SyntheticShapes through the dataset class: determinism, VOC layout, labels vs masks."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from wsss_core.datasets import VOCLayoutDataset
from wsss_core.datasets.synthetic_dataset import SyntheticShapes

from wsss_core.testing import TINY_GENERATOR


def digest(ds) -> str:
    h = hashlib.sha1()
    for i in range(len(ds)):
        s = ds.load_sample(i)
        for key in ('img', 'gt_seg', 'saliency', 'labels'):
            h.update(np.ascontiguousarray(s[key]).tobytes())
    return h.hexdigest()


def test_same_seed_same_data_other_seed_other_data(tmp_path, core_registered):
    a = SyntheticShapes(split='val', generator=TINY_GENERATOR, root=tmp_path / 'a', progress=False)
    b = SyntheticShapes(split='val', generator=TINY_GENERATOR, root=tmp_path / 'b', workers=1,
                        progress=False)
    c = SyntheticShapes(split='val', generator=dict(TINY_GENERATOR, seed=1),
                        root=tmp_path / 'a', progress=False)
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)
    assert a.data_root != c.data_root


def test_voc_reader_sees_the_same_samples_and_labels_match_masks(tmp_path, core_registered):
    ds = SyntheticShapes(split='train', generator=TINY_GENERATOR, root=tmp_path, progress=False)
    plain = VOCLayoutDataset(ds.data_root, split='train', num_classes=3, img_suffix='.png',
                             saliency_dir='saliency', labels_from='masks')
    assert len(ds) == TINY_GENERATOR['num_train'] == len(plain)
    for i in range(len(ds)):
        s, p = ds.load_sample(i), plain.load_sample(i)
        assert s['img_id'] == p['img_id']
        assert np.array_equal(s['labels'], p['labels']), 'cls file disagrees with the mask'
        present = set(np.unique(s['gt_seg'])) - {0}
        assert 1 <= len(present) <= 3
        assert s['saliency'].shape == s['gt_seg'].shape == s['img'].shape[:2] == (48, 48)


def test_unknown_generator_option_is_rejected(tmp_path, core_registered):
    with pytest.raises(TypeError, match='num_clases'):
        SyntheticShapes(generator=dict(num_clases=3), root=tmp_path)
