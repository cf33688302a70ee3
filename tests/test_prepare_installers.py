"""The core's item installs end to end against a loopback server: VOC 2012 + SBD -> the
train_aug tree VOC2012 reads; COCO 2014 zips -> the COCO2014 layout; psa's ResNet-38
.params -> a ResNet38 state dict; a saliency archive -> maps checked against train_aug."""
from __future__ import annotations

import dataclasses
import functools
import io
import json
import shutil
import tarfile
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from wsss_core.prepare.fetch import prepare_items
from wsss_core.prepare.items import all_items
from wsss_core.prepare.ledger import item_status
from wsss_core.testing.http_server import serve

pytest.importorskip('scipy')


def served(items, server, names):
    """``items`` with each named item's downloads pointed at the loopback server (the
    published checksums belong to the real files, so they are dropped: the SHA-256 is
    recorded at this first download)."""
    out = dict(items)
    for name in names:
        item = items[name]
        downloads = tuple(dataclasses.replace(d, urls=(server.url('/' + d.filename),),
                                              md5=None, sha256=None, size=None)
                          for d in item.downloads)
        out[name] = dataclasses.replace(item, downloads=downloads)
    return out


def tar_of(folder, arcname) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w:gz') as tar:
        tar.add(folder, arcname=arcname)
    return buf.getvalue()


@pytest.fixture
def roots(tmp_path):
    return {'data': tmp_path / 'data', 'weights': tmp_path / 'weights'}


def quiet(_):
    pass


def test_voc12_sbd_and_the_merged_aug_tree(tmp_path, roots, core_registered):
    from tests.test_prepare_convert_sbd import trees as make_trees
    voc, sbd, sbd_masks = make_trees.__wrapped__(tmp_path / 'src')
    files = {'/VOCtrainval_11-May-2012.tar': tar_of(voc, 'VOCdevkit/VOC2012'),
             '/benchmark.tgz': tar_of(sbd / 'benchmark_RELEASE', 'benchmark_RELEASE')}
    with serve(files) as server:
        items = served(all_items(plugin_items=[]), server, ['voc12', 'sbd'])
        done = prepare_items(['voc12-aug'], items, roots=roots, progress=False, report=quiet)
    assert done == {'voc12': 'installed', 'sbd': 'installed', 'voc12-aug': 'installed'}
    for name in ('voc12', 'sbd', 'voc12-aug'):
        assert item_status(items[name], roots['data'])[0] == 'present'
    from wsss_core.datasets import build_dataset
    root = roots['data'] / 'VOCdevkit' / 'VOC2012'
    ds = build_dataset(dict(type='VOC2012', data_root=str(root)), split='train_aug')
    # (VOC train + SBD train + SBD val) - VOC val
    assert sorted(r.img_id for r in ds.records) == sorted(
        ['2007_000000', '2007_000001', '2007_000002', '2008_000010', '2008_000011'])
    sample = ds[ds.records.index(next(r for r in ds.records if r.img_id == '2008_000011'))]
    assert np.array_equal(sample['gt_seg'], sbd_masks['2008_000011'])
    # the merge's files are in voc12-aug's ledger: removing one makes it corrupt
    (root / 'SegmentationClassAug' / '2008_000010.png').unlink()
    assert item_status(items['voc12-aug'], roots['data'])[0] == 'corrupt'


def coco_files():
    """Two train and one val image with a square of 'person' (1) and of 'dog' (id 18)."""
    from wsss_core.datasets.class_names import COCO_CLASSES
    from wsss_core.datasets.coco14 import COCO_CATEGORY_IDS
    categories = [dict(id=i, name=n) for i, n in zip(COCO_CATEGORY_IDS, COCO_CLASSES)]
    out, jsons = {}, {}
    for split, count in (('train2014', 2), ('val2014', 1)):
        buf = io.BytesIO()
        images, anns = [], []
        with zipfile.ZipFile(buf, 'w') as zf:
            for k in range(count):
                name = f'COCO_{split}_{k + 1:012d}.jpg'
                img = io.BytesIO()
                Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(img, format='JPEG')
                zf.writestr(f'{split}/{name}', img.getvalue())
                images.append(dict(id=k + 1, file_name=name, height=20, width=30))
                cat = 1 if k == 0 else 18
                anns.append(dict(id=10 * (k + 1), image_id=k + 1, category_id=cat, iscrowd=0,
                                 area=36.0, bbox=[2, 2, 6, 6],
                                 segmentation=[[2, 2, 8, 2, 8, 8, 2, 8]]))
        out[f'/{split}.zip'] = buf.getvalue()
        jsons[split] = dict(images=images, annotations=anns, categories=categories)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as zf:
        for split, data in jsons.items():
            zf.writestr(f'annotations/instances_{split}.json', json.dumps(data))
        zf.writestr('annotations/captions_train2014.json', '{}')          # not extracted
    out['/annotations_trainval2014.zip'] = buf.getvalue()
    return out


def test_coco14_layout_masks_and_lists(roots, core_registered):
    pytest.importorskip('pycocotools')
    with serve(coco_files()) as server:
        items = served(all_items(plugin_items=[]), server, ['coco14'])
        prepare_items(['coco14'], items, roots=roots, progress=False, report=quiet)
    root = roots['data'] / 'coco2014'
    assert not (root / 'annotations' / 'captions_train2014.json').exists()
    assert (root / 'ImageSets' / 'train14.txt').read_text().split() == [
        'COCO_train2014_000000000001', 'COCO_train2014_000000000002']
    from wsss_core.datasets import build_dataset
    ds = build_dataset(dict(type='COCO2014', data_root=str(root)), split='train')
    first, second = ds[0], ds[1]
    # category 18 (dog) is the 17th of the sorted ids (ids 12 is skipped): label 17
    assert set(np.unique(first['gt_seg'])) == {0, 1}
    assert set(np.unique(second['gt_seg'])) == {0, 17}
    assert first['gt_seg'][4, 4] == 1 and first['gt_seg'][15, 25] == 0
    assert len(build_dataset(dict(type='COCO2014', data_root=str(root)), split='val')) == 1


def test_psa_resnet38_from_the_mxnet_params(tmp_path, roots, monkeypatch):
    from tests.test_prepare_convert_mxnet import resnet38_file
    from wsss_core.models.resnet38 import ResNet38
    from wsss_core.prepare.convert import mxnet
    small = 1 / 16
    monkeypatch.setattr(mxnet, 'convert_resnet38_params',
                        functools.partial(mxnet.convert_resnet38_params, width_mult=small))
    params, named = resnet38_file(tmp_path)
    items = all_items(plugin_items=[])
    prepare_items(['psa-resnet38'], items, roots=roots, from_path=params, progress=False,
                  report=quiet)
    monkeypatch.setenv('WSSS_WEIGHTS', str(roots['weights']))
    model = ResNet38(width_mult=small, pretrained='item:psa-resnet38')    # the config's form
    assert model.missing_keys == []
    assert torch.equal(model.state_dict()['conv1a.weight'],
                       torch.from_numpy(named['arg:conv1a_weight']))
    assert item_status(items['psa-resnet38'], roots['weights'], deep=True)[0] == 'present'


def test_saliency_archive_item_checks_train_aug(tmp_path, roots, core_registered):
    from wsss_core.prepare.items import Download, PrepareItem
    voc = roots['data'] / 'VOCdevkit' / 'VOC2012'
    from tests.test_prepare_convert_sbd import trees as make_trees
    from wsss_core.prepare.convert.sbd import merge_voc_sbd
    src_voc, sbd, _ = make_trees.__wrapped__(tmp_path / 'src')
    shutil.copytree(src_voc, voc)
    merge_voc_sbd(voc, sbd)
    ids = [line.split()[0].split('/')[-1][:-4] for line in
           (voc / 'ImageSets' / 'SegmentationAug' / 'train_aug.txt').read_text().splitlines()]
    maps = tmp_path / 'maps'
    maps.mkdir()
    for img_id in ids:
        w, h = Image.open(voc / 'JPEGImages' / f'{img_id}.jpg').size
        Image.fromarray(np.full((h, w), 7, np.uint8)).save(maps / f'{img_id}.png')
    item = PrepareItem(name='sal', kind='saliency', description='maps', root='data',
                       path='VOCdevkit/VOC2012/saliency_x',
                       install='wsss_core.prepare.installers:install_saliency_archive',
                       downloads=(Download('sal.tgz', manual='by hand'),))
    prepare_items(['sal'], {'sal': item}, roots=roots, from_path=maps, progress=False,
                  report=quiet)
    assert sorted(p.stem for p in (voc / 'saliency_x').iterdir()) == sorted(ids)
    assert item_status(item, roots['data'])[0] == 'present'
