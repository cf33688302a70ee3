"""Acceptance of wsss-prepare: ``wsss-prepare --for oaa::voc12_vgg16.py --root R`` against a
loopback server's copies of every source builds a tree on which that config runs, with no
edit of the config (shrunk only by counts and sizes through --cfg-options)."""
from __future__ import annotations

import dataclasses
import io
import tarfile
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from wsss_core.testing.http_server import serve

pytest.importorskip('scipy')
pytest.importorskip('google.protobuf')

#: train_aug of the VOC + SBD fixture: (VOC train + SBD train + SBD val) - VOC val
TRAIN_AUG = ['2007_000000', '2007_000001', '2007_000002', '2008_000010', '2008_000011']


def tgz(entries) -> bytes:
    """A tar.gz of ``(source path, name in the archive)`` pairs."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w:gz') as tar:
        for src, arcname in entries:
            tar.add(src, arcname=arcname)
    return buf.getvalue()


def sources(tmp_path):
    """Every file the config's items download, made small: VOC, SBD, saliency_aug, the
    VGG16 ImageNet weights (width 1/16) and DeepLab's COCO-init zip (a small DeepLab)."""
    from wsss_core.plugin_loader import load_plugins
    load_plugins(['oaa'])                  # registers DeepLab's models too (oaa needs it)
    from tests.test_prepare_convert_sbd import trees as make_trees
    from wsss_oaa.models.vgg16_oaa import VGG16OAA
    voc, sbd, _ = make_trees.__wrapped__(tmp_path / 'src')
    maps = tmp_path / 'src' / 'saliency_aug'
    maps.mkdir()
    for img_id in TRAIN_AUG:
        w, h = Image.open(voc / 'JPEGImages' / f'{img_id}.jpg').size
        sal = np.zeros((h, w), np.uint8)
        sal[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 255
        Image.fromarray(sal).save(maps / f'{img_id}.png')
    torch.manual_seed(0)
    vgg = io.BytesIO()
    torch.save(VGG16OAA(width_mult=1 / 16).state_dict(), vgg)
    from wsss_deeplab.testing import caffemodel_of, small_caffe_model
    caffemodel_of(small_caffe_model(num_classes=4), tmp_path / 'init.caffemodel')
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, 'w') as zf:
        zf.write(tmp_path / 'init.caffemodel', 'prototxt_and_model/init.caffemodel')
    return {'/VOCtrainval_11-May-2012.tar': tgz([(voc, 'VOCdevkit/VOC2012')]),
            '/benchmark.tgz': tgz([(sbd / 'benchmark_RELEASE', 'benchmark_RELEASE')]),
            '/saliency_aug.tar.gz': tgz([(maps, 'saliency_aug')]),
            '/vgg16-397923af.pth': vgg.getvalue(),
            '/prototxt_and_model.zip': zipped.getvalue()}


def test_prepare_for_the_oaa_voc_config_then_run_its_first_stages(tmp_path, monkeypatch,
                                                                 capsys):
    import wsss_core.prepare.items as items_module
    import wsss_deeplab.prepare_items as deeplab_items
    files = sources(tmp_path)
    real_all_items = items_module.all_items
    root = tmp_path / 'R'
    with serve(files) as server:
        def served_items(*args, **kwargs):
            """The real items, fetched from the loopback copies (their published checksums
            belong to the real files: the SHA-256 is recorded at the first download)."""
            out = {}
            for name, item in real_all_items(*args, **kwargs).items():
                out[name] = dataclasses.replace(item, downloads=tuple(
                    dataclasses.replace(d, urls=(server.url('/' + d.filename),) if d.urls
                                        else (), sha256=None, md5=None)
                    for d in item.downloads))
            return out
        monkeypatch.setattr(items_module, 'all_items', served_items)
        from wsss_deeplab.testing import small_caffe_model
        monkeypatch.setattr(deeplab_items, '_target_model',
                            lambda: small_caffe_model(num_classes=4))
        from wsss_core.prepare.cli import main as prepare
        assert prepare(['--for', 'oaa::voc12_vgg16.py', '--root', str(root),
                        '--no-progress']) == 0
        fetched = sorted({r.path for r in server.requests})
    assert fetched == sorted(files)                   # every source, nothing else
    out = capsys.readouterr().out
    for name in ('voc12', 'sbd', 'voc12-aug', 'voc12-saliency-aug', 'torchvision-vgg16',
                 'deeplabv2-r101-coco'):
        assert f'{name}: installed' in out

    monkeypatch.setenv('WSSS_DATA', str(root))
    monkeypatch.setenv('WSSS_WEIGHTS', str(root))
    from wsss_core.cli import main as run
    work = tmp_path / 'work'
    code = run(['oaa::voc12_vgg16.py', '--work-dir', str(work), '--no-progress',
                '--stages', 'classify,accumulated,labels',
                '--cfg-options', 'stages.classify.max_epochs=2',
                'stages.classify.num_workers=0',
                'stages.classify.model.backbone.width_mult=0.0625',
                'stages.classify.model.head_channels=16',
                'stages.classify.pipeline.0.short_side=64', 'stages.labels.workers=0'])
    assert code == 0, capsys.readouterr().err
    assert (work / 'classify' / 'model.pth').is_file()
    labels = sorted(p.stem for p in (work / 'labels' / 'labels').glob('*.png'))
    assert labels == TRAIN_AUG                        # one proxy label per train_aug image
