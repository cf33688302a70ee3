"""wsss-prepare saliency: maps checked against a split (every image, its size) and installed
where a VOC config's saliency_dir reads them, from a folder or an archive."""
from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest
from PIL import Image

from wsss_core.io import DataFileError
from wsss_core.prepare.saliency import install_saliency_maps
from wsss_core.testing.layouts import voc_tree


@pytest.fixture
def voc(tmp_path, core_registered):
    root = tmp_path / 'VOC2012'
    shutil.copytree(voc_tree(3), root)
    ids = (root / 'ImageSets' / 'Segmentation' / 'train.txt').read_text().split()
    sizes = {i: Image.open(root / 'JPEGImages' / f'{i}.jpg').size for i in ids}
    return root, ids, sizes


def write_maps(folder, sizes, mode='L', skip=(), wrong=()):
    for img_id, (w, h) in sizes.items():
        if img_id in skip:
            continue
        if img_id in wrong:
            w += 1
        arr = np.full((h, w), 200, np.uint8)
        (folder / 'nested').mkdir(parents=True, exist_ok=True)
        img = Image.fromarray(arr).convert(mode)
        img.save(folder / 'nested' / f'{img_id}.png')


def test_maps_from_a_folder_are_checked_and_installed(voc, tmp_path):
    root, ids, sizes = voc
    src = tmp_path / 'maps'
    write_maps(src, sizes, mode='RGB')                           # stored as RGB: converted
    (src / 'nested' / 'not_an_id.png').write_bytes(b'ignored')   # not in the split: ignored
    written = install_saliency_maps(src, root, 'train', dest='saliency_aug')
    assert sorted(p.name for p in written) == sorted(f'{i}.png' for i in ids)
    for img_id in ids:
        sal = Image.open(root / 'saliency_aug' / f'{img_id}.png')
        assert sal.mode == 'L' and sal.size == sizes[img_id]
    from wsss_core.datasets import build_dataset
    ds = build_dataset(dict(type='VOC2012', data_root=str(root), saliency_dir='saliency_aug'),
                       split='train')
    assert (ds[0]['saliency'] == 200).all()


def test_missing_and_wrong_size_maps_are_named_and_nothing_is_installed(voc, tmp_path):
    root, ids, sizes = voc
    src = tmp_path / 'maps'
    write_maps(src, sizes, skip=(ids[0],), wrong=(ids[1],))
    with pytest.raises(DataFileError) as err:
        install_saliency_maps(src, root, 'train')
    msg = str(err.value)
    assert f'1 of 3 images have no map (first: {ids[0]})' in msg
    assert f'1 maps have the wrong size ({ids[1]}' in msg
    assert not (root / 'saliency').exists()


def test_maps_from_an_archive_and_the_cli(voc, tmp_path, monkeypatch, capsys):
    root, ids, sizes = voc
    src = tmp_path / 'maps'
    write_maps(src, sizes)
    archive = tmp_path / 'saliency.zip'
    with zipfile.ZipFile(archive, 'w') as zf:
        for path in (src / 'nested').iterdir():
            zf.write(path, f'SALIENCY/{path.name}')
        zf.writestr('README.txt', 'not a map')
    data = tmp_path / 'data'
    (data / 'VOCdevkit').mkdir(parents=True)
    shutil.move(str(root), data / 'VOCdevkit' / 'VOC2012')
    from wsss_core.prepare.cli import main
    assert main(['saliency', '--from', str(archive), '--split', 'train', '--dest', 'sal',
                 '--data-root', str(data)]) == 0
    assert "saliency_dir='sal'" in capsys.readouterr().out
    assert sorted(p.stem for p in (data / 'VOCdevkit' / 'VOC2012' / 'sal').iterdir()) == \
        sorted(ids)
    assert main(['saliency', '--data-root', str(data)]) == 2          # no --from
