"""The comparison page (wsss_core.visualization.compare) and ``wsss-report --compare``.

Three work dirs are written by hand (manifests, metrics files, CAM ``.npz``, label PNGs, a
tiny VOC-layout data set), so no training runs:

* ``zoo``: several methods through a ``compare`` entry (baseline, oaa, a broken one), stages
  shared between them (``pretrain``), OAA's segmenter not run;
* ``solo``: one method, roles inferred; its last label evaluation is *not* the one its
  segmenter was trained on; its data config names a copy of the data set;
* ``partial``: one method, interrupted at its labels (inferred through the config).

One real run (a shrunken quickstart with DeepLab, about 10 s) checks that the page reads
what the stages write: its figures must equal the manifests'.
"""
from __future__ import annotations

import html
import re
import shutil
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image

from wsss_core.io import save_cam, save_label_png, save_rgb_png, write_json
from wsss_core.visualization.compare import (COMPARE_DIR, COMPARE_HTML, RunDir, build_comparison,
                                             infer_roles, load_methods)
from wsss_core.visualization.report import ORACLE_NOTE
from wsss_core.visualization.sheet import HEADER_HEIGHT

CLASSES = ['cat', 'dog', 'bird']
H, W = 24, 32
IDS = {'train': ['img_a', 'img_b', 'img_c'], 'val': ['val_a', 'val_b']}
CELL = 48


# ============================================================================ writing work dirs
def _mask(index: int) -> np.ndarray:
    """Ground truth: a 'cat' box, for odd images also a 'dog' box; a 255 top row."""
    gt = np.zeros((H, W), np.uint8)
    gt[4:14, 3:13] = 1
    if index % 2:
        gt[10:20, 18:29] = 2
    gt[0, :] = 255
    return gt


def _write_dataset(root: Path) -> None:
    rng = np.random.default_rng(1)
    (root / 'ImageSets' / 'Segmentation').mkdir(parents=True)
    for split, ids in IDS.items():
        (root / 'ImageSets' / 'Segmentation' / f'{split}.txt').write_text('\n'.join(ids) + '\n')
        for k, img_id in enumerate(ids):
            save_rgb_png(root / 'JPEGImages' / f'{img_id}.png',
                         rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
            save_label_png(root / 'SegmentationClass' / f'{img_id}.png', _mask(k))


class Run:
    """A work dir written stage by stage; :meth:`finish` writes its ``config.py``."""

    def __init__(self, path: Path):
        self.path = path
        self.stages = []

    def stage(self, name, type_, status='complete', metrics=None, artifacts=None, detail=None,
              duration=1.0, memory=None, **options):
        earlier = {s['name'] for s in self.stages}
        self.stages.append(dict(type=type_, name=name, **options))
        stage_dir = self.path / name
        if status == 'unfinished':
            write_json(stage_dir / 'state.json', {'stage': name, 'status': 'running'})
        if status != 'complete':
            return
        artifacts = dict(artifacts or {})
        if detail is not None:
            artifacts.setdefault('metrics', 'metrics.json')
            write_json(stage_dir / artifacts['metrics'], detail)
        inputs = {v: '0' * 16 for v in options.values() if isinstance(v, str) and v in earlier}
        write_json(stage_dir / 'manifest.json', dict(
            stage=name, type=type_, status='complete', config_hash='0' * 16, inputs=inputs,
            duration_s=duration, peak_memory_mb={'rss': 100.0} if memory is None else memory,
            metrics=metrics or {}, artifacts=artifacts, counts={}))

    def cams(self, name, scale=0.9, **kw):
        for k, img_id in enumerate(IDS['train']):
            gt = _mask(k)
            ids = [c - 1 for c in np.unique(gt) if 0 < c < 255]
            save_cam(self.path / name / 'cams' / f'{img_id}.npz',
                     np.stack([(gt == c + 1).astype(np.float32) * scale for c in ids]), ids)
        self.stage(name, 'MakeCAMs', artifacts={'cams': 'cams', 'split': 'train',
                                                'class_names': CLASSES}, split='train', **kw)

    def labels(self, name, label_fn, split='train', folder='labels', type_='RefineLabels',
               artifacts=None, **kw):
        for k, img_id in enumerate(IDS[split]):
            save_label_png(self.path / name / folder / f'{img_id}.png', label_fn(k))
        self.stage(name, type_, artifacts=dict(artifacts or {}, **{
            'predictions' if type_ == 'TestSegmentor' else 'labels': folder, 'split': split}),
            **kw)

    def finish(self, data_root: Path, **extra) -> Path:
        data = dict(type='VOCLayoutDataset', data_root=str(data_root), num_classes=3,
                    class_names=CLASSES, img_suffix='.png')
        entries = ''.join(f'{k} = {v!r}\n' for k, v in extra.items())
        (self.path / 'config.py').write_text(f'data = {data!r}\nstages = {self.stages!r}\n'
                                             f'{entries}')
        return self.path


def _cam_eval(miou, oracle, iou=None):
    metrics = dict(miou=miou, threshold=0.25, oracle_miou=oracle, oracle_threshold=0.35,
                   miou_convention='union')
    return dict(metrics=metrics, detail=dict(metrics=metrics, fixed={'iou': iou or {}},
                                             curve=[[0.25, miou], [0.35, oracle]]))


def _label_eval(miou, precision, recall, fraction, iou):
    metrics = dict(miou=miou, precision=precision, recall=recall, labelled_fraction=fraction,
                   miou_convention='union')
    return dict(metrics=metrics, detail=dict(metrics=metrics, confusion={'iou': iou}))


def _test_metrics(raw, crf=None, raw_iou=None, crf_iou=None):
    metrics = dict(miou_raw=raw, miou=crf if crf is not None else raw,
                   miou_convention='gt_present')
    detail = dict(raw={'iou': raw_iou or {}})
    if crf is not None:
        metrics['miou_crf'] = crf
        detail['crf'] = {'iou': crf_iou or {}}
    return dict(metrics=metrics, detail=detail, artifacts={'metrics': 'miou.json'})


def _background(k):
    return np.zeros((H, W), np.uint8)


# distinctive figures: finding one in a column means it came from that method's stage
ZOO_IOU = {'labels': {'background': 0.9001, 'cat': 0.6002, 'dog': 0.4003, 'bird': None},
           'crf': {'background': 0.9504, 'cat': 0.7005, 'dog': 0.5006, 'bird': None},
           'oaa_labels': {'background': 0.8107, 'cat': 0.3108, 'dog': 0.2109, 'bird': None}}


def _zoo(root: Path, data_root: Path, compare=None) -> Path:
    run = Run(root / 'zoo')
    run.stage('pretrain', 'Pretrain', metrics={'cls/top1': 0.5}, duration=100.0,
              memory={'rss': 900.0, 'cuda': 2048.0})
    run.stage('classify', 'TrainClassifier', metrics={'cls/mAP': 0.9111}, duration=10.0,
              artifacts={'class_names': CLASSES, 'weights': 'm.pth'}, pretrained_from='pretrain')
    run.cams('cams', source='classify')
    run.stage('eval_cams', 'EvaluateLabels', **_cam_eval(0.4111, 0.5111), cams='cams')
    run.labels('labels', _mask, cams='cams')
    run.stage('eval_labels', 'EvaluateLabels', labels='labels', **_label_eval(
        0.6111, 0.8111, 0.7111, 0.9511, ZOO_IOU['labels']))
    run.stage('deeplab', 'TrainSegmentor', duration=20.0, labels='labels')
    for img_id in IDS['val']:                   # raw predictions: all background
        save_label_png(run.path / 'test' / 'pred_raw' / f'{img_id}.png', _background(0))
    test = _test_metrics(0.7111, 0.7222, {'cat': 0.6666}, ZOO_IOU['crf'])
    test['artifacts'].update(predictions_raw='pred_raw', crf={'preset': 'deeplab'})
    run.labels('test', _mask, split='val', folder='pred', type_='TestSegmentor',
               crf=dict(type='DenseCRF', preset='deeplab'), checkpoint='deeplab', **test)
    run.stage('oaa_classify', 'TrainClassifier', metrics={'cls/mAP': 0.8222}, duration=30.0,
              pretrained_from='pretrain')
    run.cams('oaa_cams', scale=0.5, source='oaa_classify')
    run.stage('eval_oaa_cams', 'EvaluateLabels', **_cam_eval(0.3222, 0.5333), cams='oaa_cams')
    run.labels('oaa_labels', _background, cams='oaa_cams')
    run.stage('eval_oaa_labels', 'EvaluateLabels', labels='oaa_labels', **_label_eval(
        0.5222, 0.8333, 0.6222, 0.8222, ZOO_IOU['oaa_labels']))
    run.stage('oaa_deeplab', 'TrainSegmentor', status='not run', labels='oaa_labels')
    run.stage('oaa_test', 'TestSegmentor', status='not run', checkpoint='oaa_deeplab')
    if compare is None:
        compare = dict(
            baseline=dict(classifier='classify', cams='cams', labels='labels',
                          segmenter='test', segmenter_crf='test'),
            oaa=dict(classifier='oaa_classify', cams='eval_oaa_cams', labels='oaa_labels',
                     segmenter='oaa_deeplab', segmenter_crf='oaa_test'),
            broken=dict(classifier='nope', bogus_role='classify'))
    return run.finish(data_root, compare=compare, plugins=['deeplab'])


def _solo(root: Path, data_root: Path) -> Path:
    run = Run(root / 'solo')
    run.stage('classify', 'TrainClassifier', metrics={'cls/mAP': 0.9444}, duration=5.0,
              artifacts={'class_names': CLASSES})
    run.cams('cams', source='classify')
    run.stage('eval_cams', 'EvaluateLabels', **_cam_eval(0.4444, 0.5444), cams='cams')
    run.labels('labels_a', _mask, cams='cams')
    run.stage('eval_labels_a', 'EvaluateLabels', labels='labels_a', **_label_eval(
        0.6444, 0.8444, 0.7444, 0.9444, {'cat': 0.6555}))
    run.labels('labels_b', _background, cams='cams')
    run.stage('eval_labels_b', 'EvaluateLabels', labels='labels_b', **_label_eval(
        0.1999, 0.1999, 0.1999, 0.1999, {'cat': 0.1999}))
    run.stage('deeplab', 'TrainSegmentor', labels='labels_a')
    run.labels('test', _mask, split='val', folder='pred', type_='TestSegmentor',
               checkpoint='deeplab', **_test_metrics(0.6777, raw_iou={'cat': 0.6888}))
    return run.finish(data_root)


def _partial(root: Path, data_root: Path) -> Path:
    run = Run(root / 'partial')
    run.stage('classify', 'TrainClassifier', metrics={'cls/mAP': 0.9555}, duration=7.0)
    run.cams('cams', source='classify')
    run.stage('eval_cams', 'EvaluateLabels', **_cam_eval(0.4555, 0.5555), cams='cams')
    run.stage('labels', 'RefineLabels', status='unfinished', cams='cams')
    run.stage('eval_labels', 'EvaluateLabels', status='not run', labels='labels')
    run.stage('deeplab', 'TrainSegmentor', status='not run', labels='labels')
    run.stage('test', 'TestSegmentor', status='not run', checkpoint='deeplab')
    return run.finish(data_root)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp('compare')
    _write_dataset(root / 'data')
    shutil.copytree(root / 'data', root / 'data_copy')
    return dict(root=root, zoo=_zoo(root, root / 'data'), solo=_solo(root, root / 'data_copy'),
                partial=_partial(root, root / 'data'))


@pytest.fixture(scope='module')
def page(runs):
    """The page of all three work dirs, written once into its own folder."""
    out = runs['root'] / 'page'
    path = build_comparison([runs['zoo'], runs['solo'], runs['partial']], out_dir=out,
                            num_images=3, cell_size=CELL)
    return path, path.read_text(encoding='utf-8')


# ============================================================================ reading the page
def _cells(row_html: str):
    cells = re.findall(r'<t[dh][^>]*>(.*?)</t[dh]>', row_html)
    return [html.unescape(re.sub(r'<[^>]+>', '', c)).strip() for c in cells]


def _table_rows(text: str, cls: str):
    table = re.search(rf'<table class="{cls}">(.*?)</table>', text).group(1)
    rows = [_cells(r) for r in re.findall(r'<tr>(.*?)</tr>', table)]
    return rows[0], {r[0]: dict(zip(rows[0][1:], r[1:])) for r in rows[1:]}


def _img_srcs(text: str):
    return [unquote(s) for s in re.findall(r'<img[^>]*\ssrc="([^"]*)"', text)]


METHODS = ['baseline', 'oaa', 'broken', 'solo', 'partial']


# ============================================================================ methods and roles
def test_methods_from_compare_entry_and_by_folder(runs):
    methods, problems = load_methods([runs['zoo'], runs['solo'], runs['partial']])
    assert [m.name for m in methods] == METHODS
    assert [m.inferred for m in methods] == [False, False, False, True, True]
    oaa = methods[1]
    assert oaa.roles['cams'].stage.name == 'eval_oaa_cams'
    assert oaa.roles['cams'].source.name == 'oaa_cams'
    assert oaa.roles['labels'].stage.name == 'eval_oaa_labels'       # named: the label stage
    assert oaa.roles['segmenter'].stage.name == 'oaa_test'           # named: the trainer
    assert oaa.roles['segmenter'].stage.status == 'not run'
    assert any("zoo: compare.broken: unknown role(s) ['bogus_role']" in p for p in problems)
    assert "broken: zoo has no stage 'nope'" in problems
    # shared stage: both zoo methods read 'pretrain'; the broken one reads nothing
    assert 'pretrain' in methods[0].stage_names() and 'pretrain' in oaa.stage_names()
    assert methods[0].stage_names()[:2] == ['pretrain', 'classify']
    assert 'oaa_classify' not in methods[0].stage_names()
    assert methods[2].stage_names() == []


def test_roles_inferred_follow_the_segmenter(runs):
    solo = RunDir.load(runs['solo'])
    assert infer_roles(solo) == dict(segmenter='test', labels='eval_labels_a',
                                     cams='eval_cams', classifier='classify')
    # through the config only: labels interrupted, the rest not run
    partial = RunDir.load(runs['partial'])
    assert infer_roles(partial) == dict(segmenter='test', labels='eval_labels',
                                        cams='eval_cams', classifier='classify')
    # without a compare entry the zoo is one method: the chain of its last test
    zoo = RunDir.load(runs['zoo'])
    zoo.cfg.pop('compare')
    assert infer_roles(zoo) == dict(segmenter='oaa_test', segmenter_crf='test',
                                    labels='eval_oaa_labels', cams='eval_oaa_cams',
                                    classifier='oaa_classify')


def test_same_key_in_two_work_dirs_gets_the_folder(runs, tmp_path):
    other = tmp_path / 'other'
    shutil.copytree(runs['zoo'], other)
    methods, _ = load_methods([runs['zoo'], other, runs['solo']])
    assert [m.name for m in methods] == ['zoo/baseline', 'zoo/oaa', 'zoo/broken',
                                         'other/baseline', 'other/oaa', 'other/broken', 'solo']


# ============================================================================ tables
def test_headline_values_per_method(page):
    _, text = page
    head, rows = _table_rows(text, 'headline')
    assert head[1:] == METHODS
    expect = {
        'classifier: val mAP': ['0.9111', '0.8222', None, '0.9444', '0.9555'],
        'CAMs: mIoU at the fixed background threshold': ['0.4111', '0.3222', '-', '0.4444',
                                                         '0.4555'],
        'pseudo labels: mIoU': ['0.6111', '0.5222', '-', '0.6444', 'eval_labels: not run'],
        'pseudo labels: precision (labelled pixels)': ['0.8111', '0.8333', '-', '0.8444', None],
        'pseudo labels: recall': ['0.7111', '0.6222', '-', '0.7444', None],
        'pseudo labels: labelled fraction': ['0.9511', '0.8222', '-', '0.9444', None],
        'DeepLab: mIoU, raw': ['0.7111', 'oaa_test: not run', '-', '0.6777', 'test: not run'],
        'DeepLab: mIoU, CRF': ['0.7222', 'oaa_test: not run', '-', '-', '-'],
    }
    for label, values in expect.items():
        row = rows[label]
        for method, value in zip(METHODS, values):
            if value is not None:
                assert row[method].split(' [')[0].split(' @')[0] == value, (label, method)
    oracle = next(v for k, v in rows.items() if k.startswith('CAMs: mIoU at the best'))
    assert oracle['baseline'] == '0.5111 [union] @ bg 0.35'
    assert rows['DeepLab: mIoU, CRF']['baseline'] == '0.7222 [gt_present]'
    assert rows['classifier: val mAP']['broken'].startswith("- (zoo has no stage 'nope')")
    assert 'eval_labels_b' not in text and '0.1999' not in text      # not the solo's labels
    # the oracle row is flagged, the best of a row bold
    row_html = re.search(r'<tr><td>CAMs: mIoU at the best.*?</tr>', text).group(0)
    assert 'class="badge"' in row_html
    assert ORACLE_NOTE.replace('"', '&quot;') in text
    best = re.search(r'<tr><td>classifier: val mAP</td>.*?</tr>', text).group(0)
    assert re.findall(r'<b class="best"><span class="num">([^<]*)<', best) == ['0.9555']


def test_roles_table_names_the_stages(page):
    _, text = page
    _, rows = _table_rows(text, 'roles')
    assert rows['from'] == dict(baseline='compare entry', oaa='compare entry',
                                broken='compare entry', solo='inferred', partial='inferred')
    assert rows['cams']['baseline'] == 'cams → eval_cams'
    assert rows['segmenter']['oaa'] == 'oaa_deeplab → oaa_test (not run)'
    assert rows['labels']['partial'] == 'eval_labels (not run)'
    assert rows['segmenter_crf']['solo'] == '-'


def test_per_class_iou_side_by_side(page):
    _, text = page
    head, rows = _table_rows(text, 'perclass')
    assert head[1:] == ['baseline: pseudo labels', 'baseline: DeepLab + CRF',
                        'oaa: pseudo labels', 'solo: pseudo labels', 'solo: DeepLab raw']
    assert [rows[c]['baseline: pseudo labels'] for c in ['background', 'cat', 'dog', 'bird']] \
        == ['0.9001', '0.6002', '0.4003', 'n/a']
    assert rows['cat']['baseline: DeepLab + CRF'] == '0.7005'        # CRF, not raw's 0.6666
    assert rows['cat']['oaa: pseudo labels'] == '0.3108'
    assert rows['cat']['solo: DeepLab raw'] == '0.6888'
    assert rows['background']['solo: pseudo labels'] == 'n/a'
    mean = next(v for k, v in rows.items() if k.startswith('mIoU'))
    assert mean['baseline: pseudo labels'] == f'{(0.9001 + 0.6002 + 0.4003) / 3:.4f}'
    assert ('No per-class IoU: oaa (DeepLab), broken (pseudo labels and DeepLab), partial '
            '(pseudo labels and DeepLab).') in text


def test_wall_time_and_memory_per_stage(page):
    _, text = page
    head, rows = _table_rows(text, 'times')
    assert rows['pretrain']['baseline'] == rows['pretrain']['oaa'] == \
        '100.0 scuda 2048 MiB, rss 900 MiB'
    assert rows['pretrain']['solo'] == ''                            # not read by solo
    assert rows['classify']['baseline'] == '10.0 srss 100 MiB'
    assert rows['oaa_deeplab']['oaa'] == 'not run' and rows['oaa_deeplab']['baseline'] == ''
    assert rows['labels']['partial'] == 'unfinished'
    # baseline: pretrain 100 + classify 10 + deeplab 20 + 5 stages of 1 s
    assert rows['total']['baseline'] == f'{(100 + 10 + 20 + 5) / 60:.1f} min'
    assert rows['total']['oaa'] == f'{(100 + 30 + 4) / 60:.1f} min (2 stage(s) not finished)'
    assert rows['total']['partial'] == '9.0 s (4 stage(s) not finished)'   # 7 + 1 + 1
    _, headline = _table_rows(text, 'headline')
    assert headline['peak memory, highest stage']['baseline'] == 'cuda 2048 MiB, rss 900 MiB'
    assert headline['peak memory, highest stage']['solo'] == 'rss 100 MiB'
    assert headline['peak memory, highest stage']['broken'] == '-'


# ============================================================================ samples
def _sheet(out: Path, name: str) -> np.ndarray:
    return np.asarray(Image.open(out / COMPARE_DIR / name).convert('RGB')).astype(int)


def _cell(sheet: np.ndarray, row: int, col: int, ncols: int) -> np.ndarray:
    left = sheet.shape[1] - ncols * CELL                      # the row-label strip
    y, x = HEADER_HEIGHT + row * CELL, left + col * CELL
    return sheet[y:y + CELL, x:x + CELL]


def test_samples_show_the_same_ids_for_every_method(page):
    path, text = page
    out = path.parent
    srcs = _img_srcs(text)
    for src in srcs:
        assert not src.startswith(('/', 'http', 'file:')) and (out / src).is_file(), src
    assert sorted(Path(s).name for s in srcs) == [
        'sample_train_img_a.png', 'sample_train_img_b.png', 'sample_train_img_c.png',
        'sample_val_val_a.png', 'sample_val_val_b.png']
    # train: rows baseline, oaa, solo, partial; img_b (cat + dog): image | GT | CAM cat |
    # CAM dog | pseudo labels
    sheet = _sheet(out, 'sample_train_img_b.png')
    assert sheet.shape[0] == HEADER_HEIGHT + 4 * CELL
    gt = _cell(sheet, 0, 1, 5)
    for row in range(4):
        assert np.array_equal(_cell(sheet, row, 0, 5), _cell(sheet, 0, 0, 5))   # same image
        assert np.array_equal(_cell(sheet, row, 1, 5), gt)
    assert np.array_equal(_cell(sheet, 0, 4, 5), gt)          # baseline's labels are the GT
    assert np.array_equal(_cell(sheet, 2, 4, 5), gt)          # solo's too (labels_a)
    assert not np.array_equal(_cell(sheet, 1, 4, 5), gt)      # oaa's are all background
    assert (_cell(sheet, 3, 4, 5) == 128).all()               # partial: no labels (gray)
    assert np.abs(_cell(sheet, 0, 2, 5) - _cell(sheet, 1, 2, 5)).mean() > 3    # CAM 0.9 vs 0.5
    # val: rows baseline, solo; image | GT | DeepLab | DeepLab + CRF
    val = _sheet(out, 'sample_val_val_b.png')
    assert val.shape[0] == HEADER_HEIGHT + 2 * CELL
    assert not np.array_equal(_cell(val, 0, 2, 4), _cell(val, 0, 1, 4))   # raw: background
    assert np.array_equal(_cell(val, 0, 3, 4), _cell(val, 0, 1, 4))       # CRF: the GT
    assert np.array_equal(_cell(val, 1, 2, 4), _cell(val, 1, 1, 4))
    assert (_cell(val, 1, 3, 4) == 128).all()                 # solo ran no CRF
    assert 'img_b; classes: cat, dog' in text
    assert 'Rows: baseline, oaa, solo, partial.' in text and 'Rows: baseline, solo.' in text
    assert "solo: its work dir has another data config than zoo" in html.unescape(text)


def test_missing_files_and_unreadable_data_do_not_stop_the_page(runs, tmp_path):
    zoo = tmp_path / 'zoo'
    shutil.copytree(runs['zoo'], zoo)
    (zoo / 'oaa_labels' / 'labels' / 'img_a.png').unlink()
    (zoo / 'eval_cams' / 'manifest.json').write_text('{"truncat')
    path = build_comparison([zoo], num_images=1, cell_size=CELL)
    assert path == zoo / COMPARE_HTML
    text = html.unescape(path.read_text())
    assert 'oaa pseudo labels (oaa_labels): img_a.png missing' in text
    _, rows = _table_rows(path.read_text(), 'headline')
    assert rows['CAMs: mIoU at the fixed background threshold']['baseline'].startswith(
        'eval_cams: not run (cannot read manifest.json: ')
    (zoo / 'config.py').write_text((zoo / 'config.py').read_text().replace(
        str(runs['root'] / 'data'), str(tmp_path / 'no_data')))
    text = build_comparison([zoo], num_images=1, cell_size=CELL).read_text()
    assert 'Images unavailable' in text and '0.9111' in text
    assert not list((zoo / COMPARE_DIR).glob('*.png'))          # stale sheets removed


def test_text_from_work_dirs_is_escaped(runs, tmp_path):
    run = tmp_path / 'esc'
    shutil.copytree(runs['zoo'], run)
    cfg = (run / 'config.py').read_text()
    cfg = cfg.replace("'baseline'", "'<i>x&y'")
    (run / 'config.py').write_text(cfg)
    text = build_comparison([run], num_images=0).read_text()
    assert '&lt;i&gt;x&amp;y' in text and '<i>x&y' not in text
    assert 'No sample images: num_images is 0' in text


# ============================================================================ wsss-report --compare
def test_cli_compare_writes_the_page(runs, tmp_path, capsys):
    from wsss_core.report_cli import main
    out = tmp_path / 'cmp'
    assert main(['--compare', str(runs['solo']), str(runs['partial']), '--out', str(out),
                 '--num-images', '1', '--no-plugins']) == 0
    page = out / COMPARE_HTML
    assert f'comparison: {page}' in capsys.readouterr().out
    assert not (runs['solo'] / COMPARE_HTML).exists()
    head, _ = _table_rows(page.read_text(), 'headline')
    assert head[1:] == ['solo', 'partial']
    # default output: the first work dir
    assert main([str(runs['partial']), '--compare', '--num-images', '0', '--no-plugins']) == 0
    assert (runs['partial'] / COMPARE_HTML).is_file()


def test_cli_compare_loads_every_config_s_plugins(runs, monkeypatch):
    import wsss_core.plugin_loader as plugin_loader
    from wsss_core.report_cli import main
    calls = []
    monkeypatch.setattr(plugin_loader, 'load_plugins', lambda enabled=None: calls.append(enabled))
    assert main(['--compare', str(runs['zoo']), str(runs['zoo']), '--num-images', '0']) == 0
    assert main(['--compare', str(runs['zoo']), str(runs['solo']), '--num-images', '0']) == 0
    assert calls == [['deeplab'], None]                  # solo names none: all plugins


def test_cli_compare_errors(runs, tmp_path, capsys):
    from wsss_core.report_cli import main
    for argv in ([str(runs['solo']), str(runs['partial'])],           # several need --compare
                 [str(runs['solo']), '--out', str(tmp_path)]):         # --out needs --compare
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    assert main(['--compare', str(runs['solo']), str(tmp_path / 'missing')]) == 2
    assert 'work dir not found' in capsys.readouterr().err
    (tmp_path / 'runs').mkdir()              # a folder no run wrote: named, not a blank page
    assert main(['--compare', str(runs['solo']), str(tmp_path / 'runs')]) == 2
    assert f"not a work dir (no config.py, no stage manifest or state): {tmp_path / 'runs'}" in \
        capsys.readouterr().err
    assert not (runs['solo'] / COMPARE_HTML).exists()


# ============================================================================ a real run
REAL_CONFIG = """
_base_ = ['deeplab::_recipes/synthetic.py']
plugins = ['deeplab']
seed = 0
data = dict(type='SyntheticShapes',
            generator=dict(image_size=32, num_classes=3, seed=0, num_train=24, num_val=8))
norm = dict(type='NormalizeImages', mean=(0.45, 0.45, 0.45), std=(0.25, 0.25, 0.25))
stages = dict(
    classify=dict(type='TrainClassifier', model=dict(type='CAMClassifier',
                  backbone=dict(type='SmallResNet'), data_preprocessor=norm),
                  max_epochs=1, batch_size=8, val_split='val'),
    cams=dict(type='MakeCAMs', source='classify', split='train', scales=(1.0,), flip=False),
    eval_cams=dict(type='EvaluateLabels', cams='cams', threshold=0.25),
    labels_threshold=dict(type='RefineLabels', cams='cams',
                          refiners=[dict(type='BackgroundThreshold', threshold=0.25)]),
    eval_labels_threshold=dict(type='EvaluateLabels', labels='labels_threshold'),
    labels_saliency=dict(type='RefineLabels', cams='cams',
                         refiners=[dict(type='SaliencyFusion', threshold=0.5)]),
    eval_labels_saliency=dict(type='EvaluateLabels', labels='labels_saliency'),
    deeplab=dict(labels='labels_saliency', after='eval_labels_saliency', max_iters=2,
                 batch_size=4, crop_size=32, checkpoint_interval=2, log_interval=1),
    test=dict(after='deeplab', workers=0),
)
compare = dict(
    saliency=dict(classifier='classify', cams='cams', labels='labels_saliency',
                  segmenter='deeplab', segmenter_crf='test'),
    threshold=dict(classifier='classify', cams='eval_cams', labels='eval_labels_threshold'))
"""


@pytest.fixture(scope='module')
def real_run(tmp_path_factory):
    root = tmp_path_factory.mktemp('real')
    (root / 'tiny.py').write_text(REAL_CONFIG)
    env = dict(os.environ, OMP_NUM_THREADS='1', OMP_WAIT_POLICY='PASSIVE', HF_HUB_OFFLINE='1')
    res = subprocess.run([sys.executable, '-m', 'wsss_core.cli', str(root / 'tiny.py'),
                          '--work-dir', str(root / 'wd'), '--no-progress'],
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return root / 'wd'


def test_a_real_run_s_figures_come_from_its_manifests(real_run):
    from wsss_core.io import read_json
    page = build_comparison([real_run], num_images=1, cell_size=CELL)
    text = page.read_text()
    _, rows = _table_rows(text, 'headline')

    def metric(stage, key):
        return f"{read_json(real_run / stage / 'manifest.json')['metrics'][key]:.4f}"

    def shown(label, method):
        return rows[label][method].split(' [')[0].split(' @')[0]

    for method in ('saliency', 'threshold'):                  # classify and eval_cams shared
        assert shown('classifier: val mAP', method) == metric('classify', 'cls/mAP')
        assert shown('CAMs: mIoU at the fixed background threshold', method) == \
            metric('eval_cams', 'miou')
    assert shown('pseudo labels: mIoU', 'saliency') == metric('eval_labels_saliency', 'miou')
    assert shown('pseudo labels: recall', 'threshold') == \
        metric('eval_labels_threshold', 'recall')
    assert shown('DeepLab: mIoU, raw', 'saliency') == metric('test', 'miou_raw')
    assert shown('DeepLab: mIoU, CRF', 'saliency') == metric('test', 'miou_crf')
    assert rows['DeepLab: mIoU, raw']['threshold'] == '-'
    _, times = _table_rows(text, 'times')
    assert times['deeplab']['threshold'] == '' and times['deeplab']['saliency'].endswith('MiB')
    assert times['labels_threshold']['saliency'] == ''
    # the sheets: train rows saliency + threshold, val only saliency (DeepLab raw and CRF)
    train = sorted((real_run / COMPARE_DIR).glob('sample_train_*.png'))
    val = sorted((real_run / COMPARE_DIR).glob('sample_val_*.png'))
    assert len(train) == len(val) == 1
    assert np.asarray(Image.open(train[0])).shape[0] == HEADER_HEIGHT + 2 * CELL
    assert np.asarray(Image.open(val[0])).shape[0] == HEADER_HEIGHT + CELL
    assert 'Rows: saliency, threshold.' in text and 'Rows: saliency.' in text


# ============================================================================ browser check
CHROMIUM = shutil.which('chromium') or ('/usr/bin/chromium' if Path('/usr/bin/chromium').exists()
                                         else None)


@pytest.mark.skipif(CHROMIUM is None, reason='chromium not installed')
def test_headless_chromium_renders_the_comparison(runs, tmp_path):
    path = build_comparison([runs['zoo'], runs['solo']], out_dir=tmp_path / 'shot_page',
                            num_images=2, cell_size=96)
    shot = tmp_path / 'shot.png'
    cmd = [CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
           '--no-first-run', '--disable-background-networking', '--disable-component-update',
           '--disable-sync', f'--user-data-dir={tmp_path / "profile"}', f'--screenshot={shot}',
           '--window-size=1200,3000', path.resolve().as_uri()]
    subprocess.run(cmd, check=True, timeout=60, capture_output=True)
    img = np.asarray(Image.open(shot).convert('RGB')).astype(int)
    assert img.shape == (3000, 1200, 3)
    saturation = img.max(2) - img.min(2)
    assert (saturation > 80).mean() > 0.01, 'no sample sheets rendered'
    dark = (img.max(2) < 80).mean()
    assert 0.003 < dark < 0.5, 'no text rendered'
    # the badge's red (#c0392b) shows the oracle row
    red = (abs(img[..., 0] - 0xc0) < 12) & (abs(img[..., 1] - 0x39) < 12) & \
        (abs(img[..., 2] - 0x2b) < 12)
    assert red.sum() > 20, 'no oracle badge'
