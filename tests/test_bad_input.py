"""Bad input gets an error that names the file (or the registry), and nothing half-written."""
from __future__ import annotations

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from wsss_core import registry
from wsss_core.datasets import VOCLayoutDataset
from wsss_core.io import DataFileError, atomic_write, save_cam, save_label_png
from wsss_core.pipeline import Pipeline


def make_voc(root, ids=('a', 'b'), num_classes=3, mask_value=1):
    (root / 'JPEGImages').mkdir(parents=True)
    (root / 'SegmentationClass').mkdir()
    (root / 'ImageSets' / 'Segmentation').mkdir(parents=True)
    for i in ids:
        Image.fromarray(np.full((8, 10, 3), 100, np.uint8)).save(root / 'JPEGImages' / f'{i}.jpg')
        mask = np.zeros((8, 10), np.uint8)
        mask[2:5, 2:6] = mask_value
        save_label_png(root / 'SegmentationClass' / f'{i}.png', mask)
    (root / 'ImageSets' / 'Segmentation' / 'train.txt').write_text('\n'.join(ids) + '\n')
    return root


def test_unknown_type_names_registry_suggestions_and_plugin(core_registered):
    with pytest.raises(registry.UnknownComponentError) as err:
        registry.build(dict(type='CAMClasifier', backbone=None, num_classes=2), registry.MODELS)
    msg = str(err.value)
    assert "'model' registry" in msg and 'CAMClassifier' in msg
    registry.set_provider_lookup(lambda name: 'oaa' if name == 'OAAClassifier' else None)
    try:
        with pytest.raises(registry.UnknownComponentError, match="plugin 'oaa'"):
            registry.build(dict(type='OAAClassifier'), registry.MODELS)
    finally:
        registry.set_provider_lookup(None)


def test_unknown_stage_type_in_a_pipeline_names_the_stage_registry(tmp_path, core_registered):
    cfg = Config(dict(data=dict(type='SyntheticShapes'),
                      stages=[dict(type='MakeCAM', name='cams', source='x')]))
    with pytest.raises(registry.UnknownComponentError, match="'stage' registry.*MakeCAMs"):
        Pipeline(cfg, tmp_path)


def test_unreadable_image_is_named(tmp_path):
    root = make_voc(tmp_path / 'voc')
    (root / 'JPEGImages' / 'b.jpg').write_bytes(b'not a jpeg at all')
    ds = VOCLayoutDataset(root, num_classes=3)
    with pytest.raises(DataFileError, match=r'b\.jpg'):
        ds.load_sample(1)


def test_missing_image_is_named(tmp_path):
    root = make_voc(tmp_path / 'voc')
    (root / 'JPEGImages' / 'a.jpg').unlink()
    with pytest.raises(DataFileError, match=r'not found.*a\.jpg'):
        VOCLayoutDataset(root, num_classes=3).load_sample(0)


def test_missing_list_is_named(tmp_path):
    root = make_voc(tmp_path / 'voc')
    with pytest.raises(DataFileError, match=r'val\.txt'):
        VOCLayoutDataset(root, split='val', num_classes=3)


def test_label_outside_class_range_is_rejected_with_value_and_file(tmp_path):
    root = make_voc(tmp_path / 'voc', mask_value=7)
    with pytest.raises(DataFileError, match=r'a\.png.*\[7\].*0\.\.3'):
        VOCLayoutDataset(root, num_classes=3)


@pytest.mark.parametrize('entry', ['../outside', 'sub/dir', '/etc/passwd', '..'])
def test_list_entry_outside_the_data_root_is_refused(tmp_path, entry):
    root = make_voc(tmp_path / 'voc')
    (root / 'ImageSets' / 'Segmentation' / 'train.txt').write_text(f'a\n{entry}\n')
    with pytest.raises(DataFileError, match='outside the data root'):
        VOCLayoutDataset(root, num_classes=3)


def test_interrupted_write_leaves_no_file(tmp_path):
    target = tmp_path / 'x' / 'cam.npz'
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target) as fh:
            fh.write(b'partial')
            raise KeyboardInterrupt
    assert not target.exists() and list(target.parent.iterdir()) == []
    save_cam(target, np.ones((1, 2, 2)), [0])
    before = target.read_bytes()
    with pytest.raises(ValueError):
        save_cam(target, np.ones((2, 2, 2)), [0])   # bad shape: the good file stays intact
    assert target.read_bytes() == before
