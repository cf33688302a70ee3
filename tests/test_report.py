"""The HTML run report (wsss_core.visualization.report), ``wsss-report`` and the TensorBoard helper.

The work dir is written by hand (manifests, metrics.json, CAM ``.npz``, label PNGs, a tiny
VOC-layout data set), so the tests need no training run.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import types
import uuid
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image

from wsss_core.io import save_cam, save_label_png, save_rgb_png, write_json
from wsss_core.visualization.report import ORACLE_NOTE, build_report, collect_stages
from wsss_core.visualization.sheet import HEADER_HEIGHT

CLASSES = ['cat', 'dog', 'bird']
NAMES = ['background', *CLASSES]
H, W = 24, 32
TRAIN_IDS = ['img_a', 'img_b', 'img_c']
VAL_IDS = ['val_a', 'val_b']
CELL = 64

# distinctive numbers, so that finding them in the HTML means they came from the manifests
EVAL_CAMS = {'miou': 0.4321, 'threshold': 0.25, 'oracle_miou': 0.5678, 'oracle_threshold': 0.35}
EVAL_LABELS = {'miou': 0.6543, 'precision': 0.8765, 'recall': 0.7654, 'labelled_fraction': 0.9123}
CLS_METRICS = {'cls/mAP': 0.8125}
CAM_IOU = {'background': 0.9111, 'cat': 0.3141, 'dog': 0.2718, 'bird': None}
CURVE = [[0.15, 0.4011], [0.25, 0.4321], [0.35, 0.5678], [0.45, 0.5012]]


# ============================================================================ the work dir
def _mask(index: int) -> np.ndarray:
    """Ground truth: a 'cat' box, and for odd images a 'dog' box; a 255 border."""
    gt = np.zeros((H, W), np.uint8)
    gt[4:14, 3:13] = 1
    if index % 2:
        gt[10:20, 18:29] = 2
    gt[0, :] = 255
    return gt


def _write_dataset(root: Path) -> None:
    rng = np.random.default_rng(0)
    lists = root / 'ImageSets' / 'Segmentation'
    lists.mkdir(parents=True)
    for split, ids in (('train', TRAIN_IDS), ('val', VAL_IDS)):
        (lists / f'{split}.txt').write_text(''.join(f'{i}\n' for i in ids))
        for k, img_id in enumerate(ids):
            save_rgb_png(root / 'JPEGImages' / f'{img_id}.png',
                         rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
            save_label_png(root / 'SegmentationClass' / f'{img_id}.png', _mask(k))


def _manifest(stage_dir: Path, type_: str, **record) -> None:
    write_json(stage_dir / 'manifest.json', dict(record, stage=stage_dir.name, type=type_,
                                                 status='complete', duration_s=1.5,
                                                 config_hash='0' * 16, inputs={}))


def _write_stages(wd: Path) -> None:
    _manifest(wd / 'classify', 'TrainClassifier', metrics=CLS_METRICS,
              counts={'train_images': 3}, artifacts={'class_names': CLASSES, 'weights': 'm.pth'})
    vis = wd / 'classify' / '20260101_000000' / 'vis_data'
    vis.mkdir(parents=True)
    (vis / 'scalars.json').write_text(''.join(
        json.dumps({'loss': 1.0 / s, 'loss_cls': 1.0 / s, 'lr': 0.1, 'iter': s, 'step': s}) + '\n'
        for s in range(1, 6)) + '{"cls/mAP": 0.8125, "step": 1}\n{"truncat')

    for k, img_id in enumerate(TRAIN_IDS):
        gt = _mask(k)
        ids = [c - 1 for c in np.unique(gt) if 0 < c < 255]
        cams = np.stack([(gt == c + 1).astype(np.float32) * 0.9 for c in ids])
        save_cam(wd / 'cams' / 'cams' / f'{img_id}.npz', cams, ids)
        save_label_png(wd / 'labels' / 'labels' / f'{img_id}.png', gt)
    _manifest(wd / 'cams', 'MakeCAMs', counts={'images': 3},
              artifacts={'cams': 'cams', 'split': 'train', 'class_names': CLASSES})
    _manifest(wd / 'labels', 'RefineLabels', counts={'images': 3},
              artifacts={'labels': 'labels', 'split': 'train', 'class_names': CLASSES})

    write_json(wd / 'eval_cams' / 'metrics.json', {
        'metrics': EVAL_CAMS, 'curve': CURVE,
        'fixed': {'iou': CAM_IOU, 'miou': EVAL_CAMS['miou']},
        'oracle': {'threshold': 0.35, 'miou': 0.5678, 'oracle': True}})
    _manifest(wd / 'eval_cams', 'EvaluateLabels', metrics=EVAL_CAMS, counts={'images': 3},
              artifacts={'metrics': 'metrics.json', 'source': 'cams', 'split': 'train'})
    write_json(wd / 'eval_labels' / 'metrics.json', {
        'metrics': EVAL_LABELS,
        'confusion': {'iou': {'background': 0.95, 'cat': 0.6061, 'dog': 0.4077, 'bird': None}},
        'quality': {'per_class': {'0': {'precision': 0.9901, 'recall': 0.9802},
                                  '1': {'precision': 0.7303, 'recall': 0.7204}}}})
    _manifest(wd / 'eval_labels', 'EvaluateLabels', counts={'images': 3},
              metrics=dict(EVAL_LABELS, **{'<b>odd&key': 1}),
              artifacts={'metrics': 'metrics.json', 'source': 'labels', 'split': 'train'})

    for k, img_id in enumerate(VAL_IDS):
        save_label_png(wd / 'predict' / 'pred' / f'{img_id}.png', _mask(k))
    _manifest(wd / 'predict', 'TestSegmentor', counts={'images': 2},
              artifacts={'predictions': 'pred', 'split': 'val'})

    # interrupted: state.json, a partial labels dir, no manifest
    write_json(wd / 'refine_crf' / 'state.json', {'stage': 'refine_crf', 'status': 'running'})
    save_label_png(wd / 'refine_crf' / 'labels' / 'img_a.png', _mask(0))


def _write_config(wd: Path, data_root: Path) -> None:
    stages = [dict(type='TrainClassifier', name='classify'),
              dict(type='MakeCAMs', name='cams'), dict(type='EvaluateLabels', name='eval_cams'),
              dict(type='RefineLabels', name='labels'),
              dict(type='EvaluateLabels', name='eval_labels'),
              dict(type='TestSegmentor', name='predict'),
              dict(type='RefineLabels', name='refine_crf'),
              dict(type='TrainSegmentor', name='segment')]
    data = dict(type='VOCLayoutDataset', data_root=str(data_root), num_classes=3,
                class_names=CLASSES, img_suffix='.png')
    (wd / 'config.py').write_text(f'data = {data!r}\nstages = {stages!r}\nseed = 0\n')
    finished = ['classify', 'cams', 'eval_cams', 'labels', 'eval_labels', 'predict']
    write_json(wd / 'summary.json', [dict(stage=s, status='ran') for s in finished])
    write_json(wd / 'env.json', {'versions': {'torch': '9.9.9'}, 'git_commit': 'abcdef1234567'})


@pytest.fixture
def work_dir(tmp_path):
    wd = tmp_path / 'run'
    _write_dataset(tmp_path / 'data')
    _write_stages(wd)
    _write_config(wd, tmp_path / 'data')
    return wd


def _img_srcs(html_text: str):
    return [unquote(s) for s in re.findall(r'<img[^>]*\ssrc="([^"]*)"', html_text)]


def _build(wd, **kw):
    kw.setdefault('cell_size', CELL)
    path = build_report(wd, **kw)
    return path, path.read_text(encoding='utf-8')


# ============================================================================ report
def test_every_img_src_exists_and_covers_each_split(work_dir):
    path, text = _build(work_dir, num_images=2)
    assert path == work_dir / 'report.html'
    srcs = _img_srcs(text)
    assert srcs, 'no images referenced'
    for src in srcs:
        assert not src.startswith(('/', 'http', 'file:')), src
        assert (work_dir / src).is_file(), f'missing {src}'
    samples = sorted(Path(s).name for s in srcs if Path(s).name.startswith('sample_'))
    assert samples == ['sample_train_img_a.png', 'sample_train_img_b.png',
                       'sample_val_val_a.png', 'sample_val_val_b.png']
    assert 'report/curve_eval_cams.png' in srcs and 'report/loss_classify.png' in srcs


def test_metrics_classes_and_oracle_note_appear(work_dir):
    _, text = _build(work_dir, num_images=1)
    for metrics in (EVAL_CAMS, EVAL_LABELS, CLS_METRICS):
        for key, value in metrics.items():
            shown = f'{value:g}' if 'threshold' in key else f'{value:.4f}'
            assert f'>{shown}<' in text, (key, shown)
            assert key in text
    for name in NAMES:
        assert f'>{name}<' in text
    for iou in ('0.3141', '0.2718', '0.6061', '0.4077'):   # per-class IoU tables
        assert iou in text
    assert '0.7303' in text and '0.7204' in text             # precision / recall of 'cat'
    assert ORACLE_NOTE.replace('"', '&quot;') in text
    assert text.count('class="badge"') >= 3                 # oracle_miou, oracle_threshold, curve
    assert '9.9.9' in text and 'abcdef1234' in text          # env.json


def test_class_names_come_from_the_run_not_from_a_pretrain_stages_corpus():
    """A Pretrain stage (first in a pretrained config) records the ShapeCorpus's classes."""
    from wsss_core.visualization.report import StageInfo, class_order
    pretrain = StageInfo('pretrain', 'Pretrain', 'complete', manifest=dict(artifacts=dict(
        kinds=['pretrained_backbone', 'trained_model'], class_names=['tilt22/ellipse'])))
    classify = StageInfo('classify', 'TrainClassifier', 'complete',
                         manifest=dict(artifacts=dict(class_names=CLASSES)))
    assert class_order([pretrain, classify]) == ['background', *CLASSES]


def test_unfinished_and_missing_stages_are_listed(work_dir):
    stages = {st.name: st for st in collect_stages(work_dir, cfg=None)}
    assert stages['refine_crf'].status == 'unfinished'
    assert 'segment' not in stages                          # only the config knows it
    _, text = _build(work_dir, num_images=1)
    row = re.search(r'<tr><td>refine_crf</td>.*?</tr>', text).group(0)
    assert 'unfinished' in row
    row = re.search(r'<tr><td>segment</td>.*?</tr>', text).group(0)
    assert 'not run' in row and 'TrainSegmentor' in row
    assert 'Stages that did not finish: refine_crf (unfinished), segment (not run)' in text
    assert 'refine_crf (labels)' not in text                # its partial labels are not shown


def test_sample_sheet_has_one_cam_column_per_gt_class(work_dir):
    build_report(work_dir, num_images=2, cell_size=CELL)
    # img_b has cat + dog: image | GT | CAM cat | CAM dog | labels
    sheet = np.asarray(Image.open(work_dir / 'report' / 'sample_train_img_b.png'))
    assert sheet.shape == (HEADER_HEIGHT + CELL, 5 * CELL, 3)
    # img_a has only cat: image | GT | CAM cat | labels
    sheet_a = np.asarray(Image.open(work_dir / 'report' / 'sample_train_img_a.png'))
    assert sheet_a.shape == (HEADER_HEIGHT + CELL, 4 * CELL, 3)
    cells = [sheet[HEADER_HEIGHT:, i * CELL:(i + 1) * CELL].astype(int) for i in range(5)]
    assert np.abs(cells[2] - cells[0]).mean() > 10          # the CAM overlay changes the image
    assert np.abs(cells[2] - cells[3]).mean() > 5           # different classes, different CAMs
    text = (work_dir / 'report.html').read_text()
    assert 'img_b; classes: cat, dog' in text


def test_text_from_the_work_dir_is_escaped(work_dir):
    _, text = _build(work_dir, num_images=0)
    assert '&lt;b&gt;odd&amp;key' in text
    assert '<b>odd' not in text
    assert 'No sample images: num_images is 0' in text


def test_without_config_the_tables_are_still_written(work_dir):
    (work_dir / 'config.py').unlink()
    _, text = _build(work_dir, num_images=2)
    assert 'Images unavailable: no config.py in the work dir' in text
    assert '0.6543' in text and 'refine_crf' in text
    assert not [s for s in _img_srcs(text) if 'sample_' in s]
    for src in _img_srcs(text):
        assert (work_dir / src).is_file()


def test_broken_dataset_is_reported_not_raised(work_dir, tmp_path):
    shutil.rmtree(tmp_path / 'data' / 'JPEGImages')
    _, text = _build(work_dir, num_images=1)
    assert 'Images unavailable' in text and 'image not found' in text
    assert '0.4321' in text


def test_rebuild_drops_stale_pngs(work_dir):
    build_report(work_dir, num_images=3, cell_size=CELL)
    assert (work_dir / 'report' / 'sample_train_img_c.png').is_file()
    _, text = _build(work_dir, num_images=1)
    left = sorted(p.name for p in (work_dir / 'report').glob('sample_*.png'))
    assert left == ['sample_train_img_a.png', 'sample_val_val_a.png']
    assert sorted(Path(s).name for s in _img_srcs(text)) == sorted(
        p.name for p in (work_dir / 'report').glob('*.png'))


def test_missing_work_dir_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match='work dir not found'):
        build_report(tmp_path / 'nope')


# ============================================================================ wsss-report
def test_cli_regenerates_the_report(work_dir, capsys):
    from wsss_core.report_cli import main
    html_path = work_dir / 'report.html'
    html_path.write_text('stale')
    assert main([str(work_dir), '--num-images', '1', '--no-plugins']) == 0
    assert str(html_path) in capsys.readouterr().out
    text = html_path.read_text()
    assert text.startswith('<!DOCTYPE html>') and '0.5678' in text
    assert len([s for s in _img_srcs(text) if 'sample_' in s]) == 2


def test_cli_loads_the_plugins_of_the_config(work_dir, capsys, monkeypatch):
    import wsss_core.plugin_loader as plugin_loader
    from wsss_core.report_cli import main
    with open(work_dir / 'config.py', 'a') as fh:
        fh.write("plugins = ['core']\n")
    calls = []
    monkeypatch.setattr(plugin_loader, 'load_plugins', lambda enabled=None: calls.append(enabled))
    assert main([str(work_dir), '--num-images', '0']) == 0
    assert calls == [['core']]

    def broken(enabled=None):
        raise plugin_loader.PluginSelectionError('plugin oaa is not installed')
    monkeypatch.setattr(plugin_loader, 'load_plugins', broken)
    (work_dir / 'report.html').unlink()
    assert main([str(work_dir), '--num-images', '0']) == 0      # tables need no plugin
    assert 'plugin oaa is not installed' in capsys.readouterr().err
    assert (work_dir / 'report.html').is_file()


def test_cli_errors(tmp_path, capsys):
    from wsss_core.report_cli import main
    assert main([str(tmp_path / 'missing')]) == 2
    assert 'work dir not found' in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path), '--num-images', '-1'])
    assert exc.value.code == 2


# ============================================================================ browser check
CHROMIUM = shutil.which('chromium') or ('/usr/bin/chromium' if Path('/usr/bin/chromium').exists()
                                         else None)


@pytest.mark.skipif(CHROMIUM is None, reason='chromium not installed')
def test_headless_chromium_renders_images_and_tables(work_dir, tmp_path):
    path, _ = _build(work_dir, num_images=3, cell_size=128)
    shot = tmp_path / 'shot.png'
    cmd = [CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
           '--no-first-run', '--disable-background-networking', '--disable-component-update',
           '--disable-sync', f'--user-data-dir={tmp_path / "profile"}', f'--screenshot={shot}',
           '--window-size=1200,1600', path.resolve().as_uri()]
    subprocess.run(cmd, check=True, timeout=60, capture_output=True)
    img = np.asarray(Image.open(shot).convert('RGB')).astype(int)
    assert img.shape == (1600, 1200, 3)
    assert img.std() > 20, 'blank screenshot'
    saturation = img.max(2) - img.min(2)
    # the sample sheets (random images, JET CAMs) are colourful; text and tables are not
    # (measured: about 3 % of the page with the PNGs, 0.2 % with broken image links)
    assert (saturation > 80).mean() > 0.015, 'no images rendered'
    dark = (img.max(2) < 80).mean()
    assert 0.005 < dark < 0.5, 'no text rendered'


# ============================================================================ TensorBoard
def test_vis_backends_without_tensorboard(monkeypatch):
    from wsss_core.visualization import tensorboard as tb
    monkeypatch.setitem(sys.modules, 'tensorboard', None)   # makes `import tensorboard` fail
    assert tb.tensorboard_available() is False
    assert tb.default_vis_backends() == [dict(type='LocalVisBackend')]


def test_vis_backends_with_tensorboard(monkeypatch):
    from wsss_core.visualization import tensorboard as tb
    monkeypatch.setitem(sys.modules, 'tensorboard', types.ModuleType('tensorboard'))
    assert tb.tensorboard_available() is True
    backends = tb.default_vis_backends()
    assert backends == [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
    backends.clear()                                       # a fresh list on every call
    assert len(tb.default_visualizer()['vis_backends']) == 2


def test_default_visualizer_builds_and_logs_scalars(tmp_path, monkeypatch):
    import mmengine.visualization  # noqa: F401  (registers Visualizer and the backends)
    from wsss_core.registry import VISUALIZERS     # what a Runner with default_scope uses
    from wsss_core.visualization import tensorboard as tb
    monkeypatch.setitem(sys.modules, 'tensorboard', None)
    cfg = dict(tb.default_visualizer(), name=f'test-report-{uuid.uuid4().hex}',
               save_dir=str(tmp_path))
    vis = VISUALIZERS.build(cfg)
    vis.add_scalars({'loss': 0.5}, step=3)
    rows = [json.loads(line) for line in
            (tmp_path / 'vis_data' / 'scalars.json').read_text().splitlines()]
    assert rows == [{'loss': 0.5, 'step': 3}]
