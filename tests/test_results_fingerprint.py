"""scripts/results_fingerprint.py: every stage metric of the small quickstart and
oaa::synthetic, and the comparison that flags a moved, new or lost metric."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / 'scripts' / 'results_fingerprint.py'


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('results_fingerprint', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_differences_flag_moved_new_and_lost_metrics(tool):
    before = {'q': {'a': {'miou': 0.5, 'nan': float('nan')}, 'b': {'x': 1.0}}}
    after = {'q': {'a': {'miou': 0.5 + 2e-6, 'nan': float('nan'), 'new': 3.0}}}
    assert tool.differences(before, before, 1e-6) == []
    lines = tool.differences(before, after, 1e-6)
    assert len(lines) == 3
    assert lines[0].startswith('q / a / miou: 0.5 -> 0.500002')
    assert lines[1] == 'q / a / new: None -> 3.0' and lines[2] == 'q / b / x: 1.0 -> None'
    assert tool.differences(before, after, 1e-5) == ['q / a / new: None -> 3.0',
                                                     'q / b / x: 1.0 -> None']


def test_a_saved_fingerprint_covers_both_pipelines_and_compares_equal(tool, tmp_path,
                                                                      capsys):
    saved = tmp_path / 'fp.json'
    assert tool.main(['--save', str(saved)]) == 0
    got = json.loads(saved.read_text())
    assert {'classify', 'eval_labels_saliency'} <= set(got['quickstart'])
    assert {'oaa_classify', 'eval_oaa_labels', 'oaa_test'} <= set(got['oaa_synthetic'])
    assert 0.0 <= got['oaa_synthetic']['eval_oaa_labels']['miou'] <= 1.0
    got['quickstart']['eval_cams']['miou'] += 0.01              # a result that moved
    diff = tool.differences(json.loads(saved.read_text()), got, 1e-6)
    assert len(diff) == 1 and diff[0].startswith('quickstart / eval_cams / miou: ')
