"""bench/label_errors.py on hand-made label, ground-truth and part files."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from wsss_core.io import save_gray_png, save_label_png

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'bench'))

import label_errors  # noqa: E402


def test_error_split_of_scores_labels_per_part_kind(tmp_path):
    # one 2 x 4 image of class 1 (six object pixels) on background; parts: two dominant (1),
    # one colour spot (2), one faint (3), two plain body (0)
    gt = np.array([[0, 1, 1, 1], [0, 1, 1, 1]], np.uint8)
    parts = np.array([[0, 1, 1, 2], [0, 3, 0, 0]], np.uint8)
    label = np.array([[1, 1, 1, 0], [0, 1, 255, 1]], np.uint8)   # misses the spot, one body
    root = tmp_path / 'data'
    save_label_png(root / 'gt' / 'a.png', gt)
    save_gray_png(root / 'parts' / 'a.png', parts)
    save_label_png(tmp_path / 'labels' / 'a.png', label)
    records = [SimpleNamespace(img_id='a', seg_path=root / 'gt' / 'a.png'),
               SimpleNamespace(img_id='missing', seg_path=root / 'gt' / 'a.png')]
    dataset = SimpleNamespace(records=records, num_classes=1, data_root=root)
    row = label_errors.error_split_of(tmp_path / 'labels', dataset, max_images=10)
    assert row['images'] == 1
    assert row['object_to_background'] == pytest.approx(1 / 6)
    assert row['object_unlabelled'] == pytest.approx(1 / 6)
    assert row['background_to_object'] == pytest.approx(1 / 2)
    assert row['object_area_ratio'] == pytest.approx(5 / 6)
    assert row['coverage_mean'] == pytest.approx(4 / 6) and row['coverage_below_0_3'] == 0.0
    assert row['dominant_part'] == 1.0 and row['colour_spot'] == 0.0
    assert row['faint_part'] == 1.0 and row['plain_body'] == pytest.approx(1 / 2)


def test_stage_sources_reads_labels_or_both_prediction_folders(tmp_path):
    (tmp_path / 'lab' / 'labels').mkdir(parents=True)
    (tmp_path / 'lab' / 'manifest.json').write_text(json.dumps(dict(artifacts={})))
    assert label_errors.stage_sources(tmp_path / 'lab') == [
        ('lab', tmp_path / 'lab' / 'labels', 'train')]
    (tmp_path / 'seg').mkdir()
    (tmp_path / 'seg' / 'manifest.json').write_text(json.dumps(dict(artifacts=dict(
        predictions='predictions', predictions_raw='predictions_raw', split='val'))))
    assert label_errors.stage_sources(tmp_path / 'seg') == [
        ('seg', tmp_path / 'seg' / 'predictions', 'val'),
        ('seg:raw', tmp_path / 'seg' / 'predictions_raw', 'val')]
    (tmp_path / 'cams').mkdir()
    (tmp_path / 'cams' / 'manifest.json').write_text(json.dumps(dict(artifacts={})))
    with pytest.raises(SystemExit, match='neither labels'):
        label_errors.stage_sources(tmp_path / 'cams')


def test_a_stage_without_manifest_stops_the_run_before_any_scoring(tmp_path, monkeypatch,
                                                                     capsys):
    (tmp_path / 'lab' / 'labels').mkdir(parents=True)
    (tmp_path / 'lab' / 'manifest.json').write_text(json.dumps(dict(artifacts={})))
    (tmp_path / 'unfinished').mkdir()
    scored = []
    monkeypatch.setattr(label_errors, 'work_dir_dataset', lambda *a: scored.append(a))
    with pytest.raises(SystemExit, match='unfinished: no manifest.json'):
        label_errors.main([str(tmp_path), 'lab', 'unfinished'])
    assert scored == [] and capsys.readouterr().out == ''
