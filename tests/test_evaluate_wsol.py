"""EvaluateWSOL end to end on a tiny SyntheticShapes set exported to the WSOL layout."""
from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from PIL import Image

from wsss_core.wsol.metadata import WSOLMetadata, export_wsol_metadata
from wsss_core.wsol.metric import WSOLMetric
from wsss_core.wsol.normalize import minmax_normalize
from wsss_core.wsol import evaluate_wsol
from wsss_core.wsol.evaluate_wsol import EvaluateWSOL
from wsss_core.pipeline.manifest import write_manifest
from wsss_core.pipeline.stage import StageContext, StageError
from wsss_core.registry import MODELS, STAGES, build

GENERATOR = dict(image_size=48, num_classes=3, seed=0, num_train=32, num_val=16)
MODEL = dict(type='CAMClassifier', num_classes=3,
             backbone=dict(type='SmallResNet', widths=(4, 4, 8, 8)))
SIZE = 32


@pytest.fixture(scope='module')
def wsol_root(tmp_path_factory):
    from wsss_core.components import register_core_components
    from wsss_core.datasets.synthetic_dataset import SyntheticShapes
    register_core_components()
    root = tmp_path_factory.mktemp('wsol')
    for split in ('train', 'val'):
        src = SyntheticShapes(split=split, generator=GENERATOR, workers=1, progress=False)
        export_wsol_metadata(src, root, 'SYN', split)
    return root


def data_cfg(root):
    return dict(type='WSOLMetadata', data_root=str(root), name='SYN')


@pytest.fixture
def fake_classifier(tmp_path):
    """A finished 'classify' stage: a random tiny CAMClassifier and its manifest."""
    torch.manual_seed(0)
    model = build(MODEL, MODELS).eval()
    stage_dir = tmp_path / 'classify'
    stage_dir.mkdir()
    torch.save(model.state_dict(), stage_dir / 'model.pth')
    write_manifest(stage_dir, dict(artifacts=dict(weights='model.pth', model=MODEL,
                                                  num_classes=3, class_names=['a', 'b', 'c'])))
    return model


def run_stage(tmp_path, root, **options):
    stage = EvaluateWSOL('wsol', source='classify', split='val', image_size=SIZE, batch_size=3,
                         **options)
    ctx = StageContext(cfg=Config(dict(data=data_cfg(root))), work_dir=tmp_path,
                       stage_dir=tmp_path / 'wsol', progress=False)
    return stage.run(ctx)


def test_scoremaps_scores_and_metrics_match_a_direct_computation(tmp_path, wsol_root,
                                                                 fake_classifier, monkeypatch):
    monkeypatch.setattr(evaluate_wsol, 'CHUNK', 4)           # several resumable chunks
    out = run_stage(tmp_path, wsol_root, save_scoremaps=True)
    ds = WSOLMetadata(wsol_root, 'SYN', split='val')
    assert out['counts'] == dict(images=len(ds), computed=len(ds), reused=0) and len(ds) >= 3

    model = fake_classifier
    metric = WSOLMetric(image_size=SIZE)
    top1 = []
    for i, rec in enumerate(ds.records):
        s = ds.load_sample(i)
        # independent path: PIL bilinear to the square, CAM = ReLU(W f) of the GT class,
        # bicubic to the square, min-max
        img = np.array(Image.fromarray(s['img']).resize((SIZE, SIZE), Image.BILINEAR))
        x = model.data_preprocessor.normalize(torch.from_numpy(img[None]).permute(0, 3, 1, 2))
        with torch.no_grad():
            logits = model(x, mode='tensor')[0].numpy()
            cam = F.relu(model.cam_logits(x))[0, s['gt_label']].numpy()
        want = minmax_normalize(cv2.resize(cam, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC))
        saved = np.load(tmp_path / 'wsol' / 'scoremaps' / f'{rec.img_id}.npy')
        np.testing.assert_allclose(saved, want, atol=1e-5)
        assert saved.max() == pytest.approx(1.0) and saved.min() == 0.0   # not a flat map
        top1.append(int(np.argmax(logits)) == s['gt_label'])
        metric.process({}, [dict(scoremap=saved, gt_boxes=s['gt_boxes'], ori_size=s['ori_size'],
                                 gt_mask=s['gt_mask'], ignore_mask=s['ignore_mask'],
                                 scores=logits, gt_label=s['gt_label'])])
    expected = metric.compute_metrics(metric.results)
    assert out['metrics'] == pytest.approx(expected)
    assert out['metrics']['Top-1 Cls'] == pytest.approx(100 * np.mean(top1))
    for key in ('MaxBoxAccV2', 'MaxBoxAcc@50', 'GT-known Loc', 'Top-1 Loc', 'Top-5 Loc', 'PxAP'):
        assert 0.0 <= out['metrics'][key] <= 100.0

    report = json.loads((tmp_path / 'wsol' / 'wsol.json').read_text())
    assert report['metrics'] == pytest.approx(out['metrics'])
    assert set(report['box_acc_curves']['all_contours']) == {'30', '50', '70'}
    assert len(report['box_acc_curves']['largest_contour']['50']) == 100

    # resume: finished chunks are reused; a missing chunk is recomputed
    again = run_stage(tmp_path, wsol_root, save_scoremaps=True)
    assert again['counts']['reused'] == len(ds) and again['metrics'] == out['metrics']
    chunks = sorted((tmp_path / 'wsol' / 'records').glob('*.npz'))
    assert len(chunks) == -(-len(ds) // 4)
    chunks[0].unlink()
    third = run_stage(tmp_path, wsol_root, save_scoremaps=True)
    assert third['counts']['computed'] == 4 and third['metrics'] == out['metrics']


def test_moana_compat_mode_and_bad_options(tmp_path, wsol_root, fake_classifier):
    pytest.importorskip('wsss_moana.wsol_mode')     # the MoANA plugin registers the mode
    out = run_stage(tmp_path, wsol_root, mode='moana-compat')
    m = out['metrics']
    assert 'MaxBoxAccV2' not in m and out['artifacts']['mode'] == 'moana-compat'
    assert m['MaxBoxAcc'] == pytest.approx(np.mean([m['MaxBoxAcc@30'], m['MaxBoxAcc@50'],
                                                    m['MaxBoxAcc@70']]))
    report = json.loads((tmp_path / 'wsol' / 'wsol.json').read_text())
    assert report['best_tau']['Top-1 Loc'] == pytest.approx(0.04)
    assert not (tmp_path / 'wsol' / 'scoremaps').exists()
    with pytest.raises(StageError, match='unknown WSOL evaluation mode'):
        EvaluateWSOL('x', source='classify', mode='moana')


def test_pipeline_trains_on_the_wsol_layout_then_evaluates(tmp_path, wsol_root):
    from wsss_core.pipeline.pipeline import Pipeline
    assert STAGES.get('EvaluateWSOL') is EvaluateWSOL
    cfg = Config(dict(seed=0, data=data_cfg(wsol_root), stages=[
        dict(type='TrainClassifier', name='classify', max_epochs=1, batch_size=8,
             log_interval=1, model=dict(MODEL)),
        dict(type='EvaluateWSOL', name='wsol', source='classify', split='val',
             image_size=SIZE, batch_size=4)]))
    results = Pipeline(cfg, tmp_path, progress=False, device='cpu').run()
    wsol = {r.name: r for r in results}['wsol'].manifest
    assert 'cls/mAP' in {r.name: r for r in results}['classify'].manifest['metrics']
    assert {'MaxBoxAccV2', 'GT-known Loc', 'Top-1 Loc', 'PxAP'} <= set(wsol['metrics'])

    # the end-of-run table shows the stage's own headline metrics (percentages), in order
    from wsss_core.pipeline.summary import format_summary, summary_rows
    rows = [r for r in summary_rows(results) if r[0] == 'wsol']
    labels = [label for _, _, label, _ in rows]
    assert labels[:2] == ['MaxBoxAccV2 (%)', 'MaxBoxAcc (%)']
    assert {'GT-known Loc (%)', 'Top-1 Loc (%)', 'Top-5 Loc (%)', 'PxAP (%)'} <= set(labels)
    for _, status, label, value in rows:
        assert status == 'ran' and value == wsol['metrics'][label[:-len(' (%)')]]
    table = format_summary(results, tmp_path)
    assert re.search(rf"\nwsol +Top-1 Loc \(%\) +{wsol['metrics']['Top-1 Loc']:6.4f}  ran\n", table)
    # the classifier keeps the usual metric set
    assert any(r[0] == 'classify' and r[2] == 'classification mAP' for r in summary_rows(results))


def test_summary_reads_each_stage_headline_metrics():
    from types import SimpleNamespace

    from wsss_core.pipeline.stage import Stage
    from wsss_core.pipeline.summary import summary_rows

    class Custom(Stage):
        headline_metrics = ('b', ('a', 'metric A'), 'missing')

    metrics = dict(a=0.25, b=0.5, miou=0.75)
    res = [SimpleNamespace(name=s.name, status='ran', stage=s, manifest=dict(metrics=metrics))
           for s in (Custom('x'), Stage('y'))]
    rows = summary_rows(res)
    assert [(r[0], r[2], r[3]) for r in rows[:2]] == [('x', 'b', 0.5), ('x', 'metric A', 0.25)]
    assert [r[0] for r in rows] == ['x', 'x', 'y'] and rows[2][3] == 0.75
