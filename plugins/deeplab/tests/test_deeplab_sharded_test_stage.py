"""TestSegmentor in two ``WSSS_SHARD`` processes equals one process: predictions, and the
mIoU of the merged run covers every image (evaluated once all shards finished)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from mmengine.config import Config

from wsss_core.io import read_label_png
from wsss_core.pipeline import Pipeline, read_manifest

from wsss_deeplab.testing import registered, tiny_segmentation_pipeline  # noqa: F401


def pipeline_cfg() -> dict:
    return tiny_segmentation_pipeline(
        segmentor=dict(max_iters=2, batch_size=4, crop_size=41, log_interval=1,
                       checkpoint_interval=2),
        test=dict(flip=True, crf=dict(type='DenseCRF', preset='deeplab')))


def run(cfg, work_dir):
    return {r.name: r for r in Pipeline(Config(cfg), work_dir, progress=False).run()}


def pngs(folder):
    return {p.stem: read_label_png(p) for p in sorted(folder.glob('*.png'))}


def test_two_shards_predict_and_evaluate_like_one_process(tmp_path, registered, monkeypatch):
    cfg = pipeline_cfg()
    single = tmp_path / 'single'
    run(cfg, single)
    sharded = tmp_path / 'sharded'
    for name in ('classify', 'cams', 'labels', 'deeplab'):
        shutil.copytree(single / name, sharded / name)

    monkeypatch.setenv('WSSS_SHARD', '0/2')
    first = run(cfg, sharded)['test']
    assert first.status == 'shard done' and read_manifest(sharded / 'test') is None
    assert not (sharded / 'test' / 'miou.json').exists()   # a share's mIoU is not the mIoU
    assert len(list((sharded / 'test' / 'predictions').glob('*.png'))) == 4
    monkeypatch.setenv('WSSS_SHARD', '1/2')
    second = run(cfg, sharded)['test']
    assert second.status == 'resumed'

    want, got = read_manifest(single / 'test'), second.manifest
    assert got['counts'] == dict(images=8, computed=8, reused=0, evaluated=8)
    assert got['artifacts'] == want['artifacts']
    got_metrics, want_metrics = dict(got['metrics']), dict(want['metrics'])
    assert got_metrics.pop('miou_by_convention') == pytest.approx(
        want_metrics.pop('miou_by_convention'))
    assert got_metrics == pytest.approx(want_metrics)
    assert json.loads((sharded / 'test' / 'miou.json').read_text()) == \
        json.loads((single / 'test' / 'miou.json').read_text())
    for folder in ('predictions', 'predictions_raw'):
        a, b = pngs(single / 'test' / folder), pngs(sharded / 'test' / folder)
        assert sorted(a) == sorted(b) and len(a) == 8
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
