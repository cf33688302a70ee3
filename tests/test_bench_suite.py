"""Smoke checks of the benchmark suite's harness (bench/suite.py) on tiny sizes.

The ratios' values depend on the machine; what is checked is the structure (every requested
row, each with a baseline, a measured value and their ratio), figures known independently
(stage times from hand-written manifests, the SmallResNet's FLOPs counted by conv hooks,
CAM paths agreeing, CRF labels identical) and the command line's JSON and table.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / 'bench'
sys.path.insert(0, str(BENCH))

import suite  # noqa: E402

TINY = ['flops.models=small_resnet', 'flops.matmul_n=128', 'flops.repeats=1', 'flops.batch=2',
        'flops.size=32', 'cam.images=4', 'cam.size=32', 'cam.batch=2', 'cam.repeats=1',
        'crf.images=2', 'crf.workers=2', 'crf.h=48', 'crf.w=64',
        'classifier_overhead.iters=2', 'classifier_overhead.warmup=1',
        'classifier_overhead.batch_size=4', 'classifier_overhead.image_size=32',
        'deeplab_overhead.iters=2', 'deeplab_overhead.warmup=1', 'deeplab_overhead.batch_size=2']


def write_stage(work_dir: Path, name: str, duration: float, finished: float, **extra) -> None:
    d = work_dir / name
    d.mkdir(parents=True)
    (d / 'manifest.json').write_text(json.dumps(dict(
        stage=name, type='FakeStage', status='complete', duration_s=duration,
        finished=finished, **extra)))


def check_row(row: dict) -> None:
    for key in ('baseline', 'measured'):
        fig = row[key]
        assert set(fig) == {'label', 'value', 'unit'} and fig['label'] and fig['unit']
        assert math.isfinite(fig['value']) and fig['value'] > 0, (row['name'], key, fig)
    assert row['ratio'] > 0 and math.isfinite(row['ratio'])
    assert row['ratio'] == pytest.approx(row['measured']['value'] / row['baseline']['value'])
    if row['target'] is not None:
        assert isinstance(row['target_met'], bool)


def conv_flops_by_hooks(model: torch.nn.Module, x: torch.Tensor) -> int:
    """2 x multiply-adds of every Conv2d, from its output shape (an independent count)."""
    total = []

    def hook(mod, inp, out):
        k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
        total.append(2 * out.numel() * k)
    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return sum(total)


def test_stage_times_from_manifests(tmp_path, capsys):
    run = tmp_path / 'runA'
    write_stage(run, 'train', 3.0, finished=103.0)                      # started at 100
    write_stage(run, 'cams', 1.0, finished=110.0, peak_rss_mb=123.4)    # started at 109
    write_stage(run, 'early', 0.5, finished=50.0)                       # started first
    (run / 'busy').mkdir()
    (run / 'busy' / 'state.json').write_text(json.dumps(dict(status='running')))
    out = tmp_path / 'suite.json'
    rc = suite.main(['--quick', '--only', 'stages', '--json', str(out), '--work-dirs',
                     str(run), str(tmp_path / 'missing')])
    assert rc == 0
    res = json.loads(out.read_text())
    assert [r['name'] for r in res['rows']] == ['stage_time/runA/early', 'stage_time/runA/train',
                                              'stage_time/runA/cams']
    for r in res['rows']:
        check_row(r)
        assert r['baseline']['value'] == pytest.approx(4.5)
    assert [r['ratio'] for r in res['rows']] == pytest.approx([0.5 / 4.5, 3 / 4.5, 1 / 4.5])
    assert res['rows'][0]['note'] == 'peak memory: not recorded'
    assert res['rows'][2]['note'] == 'peak memory: peak_rss_mb 123.4'
    assert {s['what'] for s in res['skipped']} == {str(tmp_path / 'missing'), f'{run}/busy'}
    assert res['errors'] == [] and res['command'].startswith('python bench/suite.py --quick')
    table = capsys.readouterr().out
    assert 'row' in table and 'baseline' in table and 'stage_time/runA/cams' in table


def test_cheap_measurements_give_every_row(core_registered):
    res = suite.run_suite(only=['flops', 'cam', 'crf', 'classifier_overhead', 'deeplab_overhead'],
                          quick=True,
                          threads=1, overrides=TINY)
    assert res['errors'] == []
    rows = {r['name']: r for r in res['rows']}
    assert set(rows) == {'flops/small_resnet', 'cam/multiscale_batched', 'crf/workers_2_vs_1',
                         'train_overhead/classifier', 'data_vs_model/quickstart_classifier',
                         'train_overhead/deeplab'}
    for r in rows.values():
        check_row(r)
    assert rows['train_overhead/classifier']['target'].startswith('< 1.05')
    cam = rows['cam/multiscale_batched']['details']
    assert cam['max_abs_diff'] < 1e-4 * max(1.0, cam['max_value'])
    assert rows['crf/workers_2_vs_1']['details']['identical'] is True
    from wsss_core.models.small_resnet import SmallResNet
    counted = rows['flops/small_resnet']['details']['backbones']['small_resnet']['flops']
    assert counted == conv_flops_by_hooks(SmallResNet().eval(), torch.randn(2, 3, 32, 32))
    assert res['groups']['cam']['params']['images'] == 4       # --set reached the bench


def test_bad_override_says_what_to_write():
    with pytest.raises(SystemExit, match='has no parameter'):
        suite.presets(True, 1, overrides=['cam.nope=1'])
    with pytest.raises(SystemExit, match='GROUP.KEY=VALUE'):
        suite.presets(True, 1, overrides=['cam'])
    assert suite.presets(True, 1, overrides=['flops.models=a,b'])['flops']['models'] == ['a', 'b']
