"""bench/gpu_check.py (scripts/gpu_check.sh): the GPU check, tested where there is no GPU.

* without CUDA it ends with a clear "no CUDA" result (exit code 3, every check skipped with
  that reason, the JSON written) and writes nothing outside ``--out``;
* a check that raises is recorded as failed with its traceback and the next check runs;
  the time limit marks the checks left as skipped; the watchdog's record;
* ``--device cpu --small`` runs two cheap checks end to end (finite losses, CPU = CPU) and,
  again, writes nothing outside ``--out`` (work dirs, data cache, temporary files).
"""
from __future__ import annotations

import importlib
import json
import math
import os
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / 'bench'
SCRIPT = REPO / 'scripts' / 'gpu_check.sh'


def load(name: str):
    """Import a bench module without writing bytecode into the tree."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    before, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        module = importlib.import_module(name)
        if name == 'gpu_check':
            module.check_names()   # imports the check modules, without bytecode too
        return module
    finally:
        sys.dont_write_bytecode = before


def tree_entries() -> set:
    """Untracked and ignored paths of the repository (git's view)."""
    out = subprocess.run(['git', 'status', '--porcelain', '--ignored', '--untracked-files=all'],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    return {line[3:] for line in out.splitlines() if line[:2] in ('??', '!!')}


def ours(paths: set) -> set:
    """The paths among ``paths`` the script could have written (others work in this tree
    at the same time: their new files are not the script's)."""
    return {p for p in paths if 'gpu_check' in p or p.startswith(('work_dirs/', 'bench/out'))
            or '__pycache__' in p and p.startswith(('bench/', 'scripts/'))}


def run_script(tmp_path: Path, *args: str, env_extra: dict = None, timeout: int = 240):
    """Run scripts/gpu_check.sh with HOME and TMPDIR pointing at empty folders."""
    home, tmp = tmp_path / 'home', tmp_path / 'systmp'
    home.mkdir()
    tmp.mkdir()
    env = dict(os.environ, HOME=str(home), TMPDIR=str(tmp), OMP_NUM_THREADS='1',
               OMP_WAIT_POLICY='PASSIVE')
    env.pop('OUT', None)
    env.update(env_extra or {})
    before = tree_entries()
    proc = subprocess.run(['bash', str(SCRIPT), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout)
    new = ours(tree_entries() - before)
    assert new == set(), f'written into the repository: {sorted(new)}'
    assert list(home.iterdir()) == [], f'written into HOME: {list(home.iterdir())}'
    assert list(tmp.iterdir()) == [], f'written into TMPDIR: {list(tmp.iterdir())}'
    return proc


# ----------------------------------------------------------------------------- no CUDA
def test_without_cuda_it_says_so_skips_everything_and_exits_3(tmp_path):
    gpu_check = load('gpu_check')
    out = tmp_path / 'out'
    proc = run_script(tmp_path, '--out', str(out), env_extra=dict(CUDA_VISIBLE_DEVICES=''))
    assert proc.returncode == gpu_check.EXIT_NO_CUDA == 3, proc.stdout + proc.stderr
    assert 'no CUDA device: nothing checked' in proc.stdout
    assert 'Traceback' not in proc.stderr
    result = json.loads((out / 'gpu_check.json').read_text())
    assert result['status'] == 'no-cuda' and result['exit_code'] == 3
    names = [c['name'] for c in result['checks']]
    assert names == gpu_check.check_names() and len(names) >= 15
    assert {(c['status'], c['reason']) for c in result['checks']} == \
        {('skipped', gpu_check.NO_CUDA)}
    assert result['summary'] == dict(passed=0, failed=0, skipped=len(names), total=len(names))
    assert 'not measured' in (out / 'gpu_column.md').read_text()


def test_bad_arguments_exit_2(tmp_path):
    proc = subprocess.run(['bash', str(SCRIPT), '--only', 'no_such_check'], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and 'unknown checks' in proc.stderr


# ----------------------------------------------------------------------------- the runner
def context(tmp_path, time_limit=60.0):
    gpu_check = load('gpu_check')
    return gpu_check, gpu_check.CheckContext(device='cpu', out=tmp_path, time_limit=time_limit)


def test_a_check_that_raises_is_recorded_as_failed_and_the_next_one_runs(tmp_path):
    gpu_check, ctx = context(tmp_path)
    ran = []

    def boom(ctx, f):
        f.details['before'] = 1
        raise ValueError('kernel exploded')

    def fine(ctx, f):
        ran.append('fine')
        f.finite('losses', [0.5, 0.25])
        f.close('loss', 1.0005, 1.0, rtol=1e-3, atol=0.0)   # |d| 5e-4 <= 1e-3 x 1

    def unfit(ctx, f):
        f.close('loss', 1.002, 1.0, rtol=1e-3, atol=0.0)    # 2e-3 > 1e-3
        f.finite('losses', [1.0, float('nan')])

    def skip(ctx, f):
        raise gpu_check.CheckSkipped('needs two GPUs')

    checks = [gpu_check.Check(n, n, fn) for n, fn in
              (('boom', boom), ('fine', fine), ('unfit', unfit), ('skip', skip))]
    records = gpu_check.run_checks(checks, ctx, log=lambda *a, **k: None)
    by = {r['name']: r for r in records}
    assert [r['name'] for r in records] == ['boom', 'fine', 'unfit', 'skip'] and ran == ['fine']
    assert by['boom']['status'] == 'failed' and by['boom']['reason'] == \
        'ValueError: kernel exploded'
    assert 'raise ValueError' in by['boom']['traceback'] and by['boom']['details'] == \
        dict(before=1)
    assert by['fine']['status'] == 'passed' and by['fine']['reason'] == ''
    cmp, = by['fine']['details']['comparisons']
    assert cmp['max_abs_diff'] == pytest.approx(5e-4) and cmp['ok'] is True
    assert by['unfit']['status'] == 'failed'
    assert 'max |difference| 0.002' in by['unfit']['reason']
    assert '1 of 2 values not finite' in by['unfit']['reason']
    assert by['skip']['status'] == 'skipped' and by['skip']['reason'] == 'needs two GPUs'


def test_the_time_limit_marks_the_remaining_checks_skipped(tmp_path):
    gpu_check, ctx = context(tmp_path, time_limit=1.0)   # no start in the last 0.1 s

    def slow(ctx, f):
        time.sleep(1.0)

    def never(ctx, f):
        raise AssertionError('must not start')

    checks = [gpu_check.Check('slow', 'slow', slow), gpu_check.Check('a', 'a', never),
              gpu_check.Check('b', 'b', never)]
    records = gpu_check.run_checks(checks, ctx, log=lambda *a, **k: None)
    assert [r['status'] for r in records] == ['passed', 'skipped', 'skipped']
    assert all(re.fullmatch(r'time limit: \d+ s of 1 s spent before it could start',
                            r['reason']) for r in records[1:])


def test_the_watchdog_records_the_running_check_and_writes_the_files(tmp_path, capsys):
    gpu_check, ctx = context(tmp_path)
    checks = [gpu_check.Check(n, n, None) for n in ('done', 'hung', 'later')]
    result = dict(status='running', device='cpu', out=str(tmp_path), command='x', started=0.0,
                  time_limit_s=9.0, environment={}, checks=[])
    progress = dict(records=[gpu_check.check_record('done', 'done', 'passed')],
                    running=(checks[1], time.monotonic()))
    finish = gpu_check._finisher(result, checks, progress, tmp_path, time.monotonic())
    assert finish(stopped=True) == gpu_check.EXIT_FAILED == 1
    written = json.loads((tmp_path / 'gpu_check.json').read_text())
    assert written['status'] == 'stopped'
    assert [(c['name'], c['status']) for c in written['checks']] == \
        [('done', 'passed'), ('hung', 'failed'), ('later', 'skipped')]
    assert 'time limit of 9 s' in written['checks'][1]['reason']
    assert finish(stopped=False) == 1       # the first finish holds
    assert 'hung' in capsys.readouterr().out


def test_the_gpu_column_names_the_device_and_keeps_each_row_in_its_cell():
    gpu_check = load('gpu_check')
    rows = [dict(row='cam/multiscale_batched', text='loop 1, batched 2 img/s: **2.00** (max '
                                                    '|difference| 1e-7)')]
    checks = [gpu_check.check_record('cam', 'cam', 'passed'),
              gpu_check.check_record('compile', 'c', 'failed', 'RuntimeError: a | b\nc'),
              gpu_check.check_record('flops', 'f', 'skipped', gpu_check.NOT_SELECTED)]
    checks[0]['column'] = rows
    result = dict(status='failed', device='cuda', command='scripts/gpu_check.sh',
                  started=0.0, duration_s=12.0, checks=checks,
                  environment=dict(device_name='NVIDIA H100 80GB HBM3', torch='2.14',
                                   cuda_runtime='13.0'))
    lines = gpu_check.gpu_column(result).splitlines()
    assert lines[0].startswith('GPU column: NVIDIA H100 80GB HBM3, torch 2.14, CUDA 13.0')
    assert lines[2] == '| row | GPU: NVIDIA H100 80GB HBM3 |'
    assert lines[4:] == [
        '| `cam/multiscale_batched` | loop 1, batched 2 img/s: **2.00** (max \\|difference\\| '
        '1e-7) |',
        '| `compile` | failed: RuntimeError: a \\| b c |']     # not-selected checks: no row
    assert all(line.count('|') - line.count('\\|') == 3 for line in lines[2:])


def test_only_an_indexed_cuda_device_is_made_current(monkeypatch):
    gpu_check = load('gpu_check')
    calls = []
    monkeypatch.setattr(torch.cuda, 'set_device', calls.append)
    for device in ('cuda', 'cpu', 'cuda:1'):
        gpu_check.use_device(device)
    assert calls == [1]     # torch.cuda.set_device('cuda') raises: no index


# ----------------------------------------------------------------------------- the probe
def test_dropout_off_makes_training_mode_deterministic_and_keeps_batch_norm_training():
    probe = load('gpu_check_probe')
    from wsss_edam.models.collaborative_attention import PerClassEncoderLayers
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5),
                              torch.nn.BatchNorm1d(4))
    enc = PerClassEncoderLayers(2, embed_dims=8, num_heads=2, ffn_dims=16, attn_dropout=0.3)
    probe.dropout_off(net)
    probe.dropout_off(enc)
    assert net[1].p == 0.0 and enc.attn_dropout == 0.0 and enc.dropout.p == 0.0
    assert net.training and net[2].training            # BatchNorm still uses batch stats
    x = torch.randn(5, 4)
    torch.testing.assert_close(net(x), net(x))
    tokens = torch.randn(2, 6, 8)
    torch.testing.assert_close(enc(tokens, pairs=1), enc(tokens, pairs=1))


def test_exact_fp32_turns_tf32_off_and_restores_it():
    probe = load('gpu_check_probe')
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cudnn.allow_tf32 = True
    try:
        with probe.exact_fp32():
            assert not torch.backends.cuda.matmul.allow_tf32
            assert not torch.backends.cudnn.allow_tf32
        assert torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_the_fused_sdpa_step_has_no_fallback_to_the_math_kernel():
    """edam_cma's step allows only the fused kernels: on the CPU (whose fused kernel has no
    dropout) it runs without attention dropout and fails with it, so a pass on a GPU means
    a fused kernel ran with the reference's dropout."""
    paths = load('gpu_check_paths')
    from wsss_edam.models.collaborative_attention import CollaborativeMultiAttention
    torch.manual_seed(0)
    cma = CollaborativeMultiAttention(16, 3)
    feat, masks = torch.randn(2, 16, 4, 4), torch.rand(2, 3, 4, 4)
    logits, grad = paths.fused_sdpa_step(cma, feat, masks, 'cpu', torch.float32, 0.0)
    assert logits.shape == (2, 3) and grad.shape == feat.shape and grad.abs().sum() > 0
    with warnings.catch_warnings(), pytest.raises(RuntimeError, match='No available kernel'):
        warnings.simplefilter('ignore')             # torch says why each kernel was refused
        paths.fused_sdpa_step(cma, feat, masks, 'cpu', torch.float32, 0.1)


# ----------------------------------------------------------------------------- --device cpu
def test_cpu_exercise_of_two_cheap_checks_passes_with_finite_losses(tmp_path):
    out = tmp_path / 'out'
    proc = run_script(tmp_path, '--device', 'cpu', '--small', '--threads', '1', '--out',
                      str(out), '--only', 'train_deeplab', 'cam')
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / 'gpu_check.json').read_text())
    by = {c['name']: c for c in result['checks']}
    assert result['status'] == 'passed' and by['train_deeplab']['status'] == 'passed'
    assert by['cam']['status'] == 'passed' and by['train_core']['status'] == 'skipped'
    stage = by['train_deeplab']['details']['amp_auto']['deeplab']
    losses = list(stage['first_losses'].values()) + list(stage['last_losses'].values())
    assert stage['iterations'] == 3 and all(math.isfinite(v) for v in losses)
    assert stage['optim_wrapper']['type'] == 'OptimWrapper'      # amp='auto' on CPU: fp32
    assert stage['model']['nchw_only_4d'] == 0                    # channels_last=True
    assert {a['dtype'] for a in stage['autocast'] if a['error'] is None} == \
        {'bfloat16', 'float16'}
    cmps = by['train_deeplab']['details']['comparisons']
    assert cmps and all(c['max_abs_diff'] == 0.0 for c in cmps)   # CPU against CPU
    assert 'skipped:' in proc.stdout and 'not selected (--only)' in proc.stdout
    column = (out / 'gpu_column.md').read_text()
    assert 'NOT GPU figures' in column and '`cam/multiscale_batched`' in column
    assert (out / 'work' / 'train_deeplab' / 'deeplab' / 'manifest.json').is_file()
