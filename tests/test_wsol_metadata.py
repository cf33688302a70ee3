"""The WSOL metadata layout (wsolevaluation): reading, errors, and the export from VOC layout."""
from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from PIL import Image

from wsss_core.wsol.metadata import WSOLMetadata, export_wsol_metadata
from wsss_core.io import DataFileError


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def make_image(path, w, h, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(path)


def make_mask(path, w, h, rect):
    path.parent.mkdir(parents=True, exist_ok=True)
    m = np.zeros((h, w), np.uint8)
    x0, y0, x1, y1 = rect
    m[y0:y1 + 1, x0:x1 + 1] = 255
    Image.fromarray(m).save(path)


@pytest.fixture
def cub_like(tmp_path):
    """CUB-style split 'test': 3 images, 2 classes, boxes (one image with two boxes)."""
    ids = ['001.A/a1.png', '001.A/a2.png', '002.B/b1.png']
    for i, img_id in enumerate(ids):
        make_image(tmp_path / 'dataset' / 'TOY' / img_id, 20 + i, 10)
    meta = tmp_path / 'metadata' / 'TOY' / 'test'
    write(meta / 'image_ids.txt', '\n'.join(ids) + '\n')
    write(meta / 'class_labels.txt', '001.A/a1.png,0\n001.A/a2.png,0\n002.B/b1.png,1\n')
    write(meta / 'image_sizes.txt', '001.A/a1.png,20,10\n001.A/a2.png,21,10\n'
                                    '002.B/b1.png,22,10\n')
    write(meta / 'localization.txt', '001.A/a1.png,1,2,5,6\n001.A/a2.png,0,0,3,3\n'
                                     '001.A/a2.png,10.5,2,20,9\n002.B/b1.png,4,4,8,8\n')
    return tmp_path


def test_reads_labels_sizes_and_several_boxes_per_image(cub_like):
    ds = WSOLMetadata(cub_like, 'TOY', split='test', num_classes=2)
    assert len(ds) == 3 and ds.num_classes == 2 and ds.class_names == ('class_0', 'class_1')
    s = ds.load_sample(1)
    assert s['img_id'] == '001.A/a2.png' and s['img'].shape == (10, 21, 3)
    assert s['labels'].tolist() == [1.0, 0.0] and s['gt_label'] == 0
    assert s['ori_size'] == (21, 10)
    np.testing.assert_array_equal(s['gt_boxes'], [[0, 0, 3, 3], [10.5, 2, 20, 9]])
    assert ds.records[2].class_ids == (1,) and ds.records[2].seg_path is None
    assert 'gt_mask' not in s


def test_num_classes_from_all_splits_and_training_pipeline(cub_like):
    meta = cub_like / 'metadata' / 'TOY'
    write(meta / 'train' / 'image_ids.txt', '002.B/b1.png\n')
    write(meta / 'train' / 'class_labels.txt', '002.B/b1.png,4\n')    # label 4 in another split
    ds = WSOLMetadata(cub_like, 'TOY', split='test', max_samples=2,
                      pipeline=[dict(type='PackInputs', keys=('img', 'labels'))])
    assert ds.num_classes == 5 and len(ds) == 2
    item = ds[0]
    assert tuple(item['img'].shape) == (3, 10, 20) and item['labels'].tolist() == [1, 0, 0, 0, 0]
    train = WSOLMetadata(cub_like, 'TOY', split='train')       # no localization.txt: no boxes
    assert train.num_classes == 5 and 'gt_boxes' not in train.load_sample(0)


@pytest.mark.parametrize('fname, text, where', [
    ('class_labels.txt', '001.A/a1.png,0\n001.A/a2.png,zero\n002.B/b1.png,1\n',
     'class_labels.txt:2'),
    ('class_labels.txt', '001.A/a1.png,0\n001.A/a2.png,0\n002.B/b1.png,7\n', 'label 7'),
    ('localization.txt', '001.A/a1.png,1,2,5,6\n001.A/a2.png,0,0,3,3\n002.B/b1.png,4,4,8\n',
     'localization.txt:3'),
    ('localization.txt', '001.A/a1.png,5,2,1,6\n001.A/a2.png,0,0,3,3\n002.B/b1.png,4,4,8,8\n',
     'localization.txt:1'),
    ('image_sizes.txt', '001.A/a1.png,20,10\n001.A/a2.png,21\n002.B/b1.png,22,10\n',
     'image_sizes.txt:2'),
    ('image_ids.txt', '001.A/a1.png\n../escape.png\n', 'image_ids.txt:2'),
    ('localization.txt', '001.A/a1.png,1,2,5,6\n001.A/a2.png,0,0,3,3\n', 'no localization'),
])
def test_malformed_metadata_names_file_and_line(cub_like, fname, text, where):
    write(cub_like / 'metadata' / 'TOY' / 'test' / fname, text)
    with pytest.raises(DataFileError, match=where.replace('.', r'\.')):
        WSOLMetadata(cub_like, 'TOY', split='test', num_classes=2)


def test_openimages_style_masks_union_and_ignore(tmp_path):
    root = tmp_path / 'dataset' / 'OI'
    make_image(root / 'test' / 'c' / 'x.jpg', 8, 6)
    make_mask(root / 'test' / 'c' / 'x_m1.png', 8, 6, (0, 0, 1, 1))
    make_mask(root / 'test' / 'c' / 'x_m2.png', 8, 6, (5, 3, 6, 4))
    make_mask(root / 'test' / 'c' / 'x_ignore.png', 8, 6, (0, 0, 7, 1))
    meta = tmp_path / 'metadata' / 'OI' / 'test'
    write(meta / 'image_ids.txt', 'test/c/x.jpg\n')
    write(meta / 'class_labels.txt', 'test/c/x.jpg,3\n')
    write(meta / 'localization.txt', 'test/c/x.jpg,test/c/x_m1.png,test/c/x_ignore.png\n'
                                     'test/c/x.jpg,test/c/x_m2.png,\n')
    ds = WSOLMetadata(tmp_path, 'OI', split='test', num_classes=5)
    s = ds.load_sample(0)
    want = np.zeros((6, 8), np.uint8)
    want[0:2, 0:2] = 1
    want[3:5, 5:7] = 1
    np.testing.assert_array_equal(s['gt_mask'], want)
    assert s['ignore_mask'].sum() == 16 and 'gt_boxes' not in s
    write(meta / 'localization.txt', 'test/c/x.jpg,test/c/x_m1.png,test/c/x_ignore.png\n'
                                     'test/c/x.jpg,test/c/x_m2.png,test/c/x_ignore.png\n')
    with pytest.raises(DataFileError, match='localization.txt:2'):
        WSOLMetadata(tmp_path, 'OI', split='test', num_classes=5)
    write(meta / 'localization.txt', 'test/c/x.jpg,test/c/x_m1.png,test/c/x_ignore.png\n'
                                     'test/c/x.jpg,1,2,3,4\n')
    with pytest.raises(DataFileError, match='localization.txt:2'):
        WSOLMetadata(tmp_path, 'OI', split='test', num_classes=5)


# ----------------------------------------------------------------------------- export
#: a few dozen 48 px images (generated once per test session into $WSSS_CACHE)
GENERATOR = dict(image_size=48, num_classes=3, seed=0, num_train=24, num_val=4)


def naive_component_boxes(mask, min_pixels):
    """8-connected components by breadth-first search; inclusive boxes of the big ones."""
    h, w = mask.shape
    seen = np.zeros_like(mask, bool)
    boxes = []
    for y in range(h):
        for x in range(w):
            if not mask[y, x] or seen[y, x]:
                continue
            queue, pixels = deque([(y, x)]), []
            seen[y, x] = True
            while queue:
                cy, cx = queue.popleft()
                pixels.append((cy, cx))
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        ny, nx = cy + dy, cx + dx
                        if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                            seen[ny, nx] = True
                            queue.append((ny, nx))
            if len(pixels) >= min_pixels:
                ys, xs = zip(*pixels)
                boxes.append((min(xs), min(ys), max(xs), max(ys)))
    return sorted(boxes)


def test_export_from_synthetic_shapes_round_trips(tmp_path, core_registered):
    from wsss_core.datasets.synthetic_dataset import SyntheticShapes
    src = SyntheticShapes(split='train', generator=GENERATOR, workers=1, progress=False)
    counts = export_wsol_metadata(src, tmp_path / 'wsol', 'SYN', 'train', min_component_pixels=20)
    single = [i for i in range(len(src)) if len(src.records[i].class_ids) == 1]
    assert counts['images'] + counts['skipped_no_component'] == len(single) > 0
    assert counts['skipped_multi_class'] == len(src) - len(single)

    ds = WSOLMetadata(tmp_path / 'wsol', 'SYN', split='train')
    assert ds.num_classes == 3 and ds.class_names == src.class_names
    by_name = {src.records[i].img_path.name: i for i in single}
    assert len(ds) == counts['images']
    for j, rec in enumerate(ds.records):
        s = ds.load_sample(j)
        raw = src.load_sample(by_name[rec.img_id.split('/')[-1]])
        cls = int(np.flatnonzero(raw['labels'])[0])
        assert s['gt_label'] == cls and rec.img_id.startswith('train/')
        np.testing.assert_array_equal(s['img'], raw['img'])             # the same image file
        assert (tmp_path / 'wsol' / 'dataset' / 'SYN' / rec.img_id).is_symlink()
        fg = raw['gt_seg'] == cls + 1
        assert sorted(map(tuple, s['gt_boxes'].astype(int).tolist())) == \
            naive_component_boxes(fg, 20)
        np.testing.assert_array_equal(s['gt_mask'], fg.astype(np.uint8))
        np.testing.assert_array_equal(s['ignore_mask'], (raw['gt_seg'] == 255).astype(np.uint8))
        assert s['ori_size'] == (48, 48)


def test_export_refuses_a_dataset_without_masks(tmp_path, core_registered):
    from wsss_core.datasets.synthetic_dataset import SyntheticShapes
    src = SyntheticShapes(split='val', generator=GENERATOR, workers=1, progress=False,
                          load_gt=False)
    with pytest.raises(DataFileError, match='no segmentation mask'):
        export_wsol_metadata(src, tmp_path / 'wsol', 'SYN', 'val')
