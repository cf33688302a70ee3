"""SyntheticShapesWSOL: the single-class SyntheticShapes images as a WSOL data set."""
from __future__ import annotations

import numpy as np

TINY = dict(image_size=48, num_classes=3, seed=0, num_train=24, num_val=12)


def test_single_class_images_with_boxes_around_their_objects(core_registered, tmp_path):
    from wsss_core.datasets.synthetic_dataset import SyntheticShapes
    from wsss_core.wsol.synthetic import SyntheticShapesWSOL
    wsol = SyntheticShapesWSOL('train', generator=TINY, root=tmp_path, progress=False)
    seg = SyntheticShapes('train', generator=TINY, root=tmp_path, progress=False)
    single = [i for i in range(len(seg)) if np.count_nonzero(seg.load_sample(i)['labels']) == 1]
    assert 0 < len(wsol) <= len(single) < len(seg)
    by_name = {r.img_id.split('/')[-1].split('.')[0]: i for i, r in enumerate(seg.records)}
    for k in range(len(wsol)):
        sample = wsol.load_sample(k)
        ref = seg.load_sample(by_name[sample['img_id'].split('/')[-1].split('.')[0]])
        assert np.array_equal(sample['img'], ref['img'])
        assert np.array_equal(sample['labels'], ref['labels'])        # one-hot, same class
        fg = ref['gt_seg'] == int(np.argmax(ref['labels'])) + 1
        ys, xs = np.nonzero(fg)
        boxes = np.asarray(sample['gt_boxes'])
        # the union of the component boxes is the object mask's bounding box
        assert (boxes[:, 0].min(), boxes[:, 1].min()) == (xs.min(), ys.min())
        assert (boxes[:, 2].max(), boxes[:, 3].max()) == (xs.max(), ys.max())
    # a second build reuses the export (no rewrite): same files, same records
    again = SyntheticShapesWSOL('train', generator=TINY, root=tmp_path, progress=False)
    assert [r.img_id for r in again.records] == [r.img_id for r in wsol.records]
    assert len(SyntheticShapesWSOL('val', generator=TINY, root=tmp_path, progress=False)) > 0
