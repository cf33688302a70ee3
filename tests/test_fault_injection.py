"""Fault injection: runs killed (SIGKILL) inside every stage type resume to the artifacts of
an uninterrupted run; a full disk stops a run with a clear error and loses nothing.

**Kills.**  The run is the tiny pipeline classify (TrainClassifier, 3 epochs of 2
iterations, a checkpoint per epoch) -> cams (MakeCAMs) -> labels (RefineLabels with the
dense CRF) -> deeplab (TrainSegmentor, 4 iterations, a checkpoint every 2) -> test
(TestSegmentor: scores, then label PNGs) under ``wsss-run``.  Each chain (seeded) kills one
run in each stage at a point drawn from its seed (:func:`kill_points`), then reruns with
``--resume``, which continues that stage and is killed in the next one; a last resume
finishes.  After every kill: exit by SIGKILL, no manifest of the killed stage, every file
there complete (it loads), a ``.tmp`` file only where the kill fell between the write of a
file and its rename.  After the resume: those files untouched (inode, mtime), none of them
written again, training continued from the last checkpoint (only the iterations after it
redone), no ``.tmp`` left; at the end every artifact equals the uninterrupted run's.

**Disk full.**  The n-th CAM / label write fails with ENOSPC (half written): the run stops
with an error naming that file and saying the disk is full, no ``.tmp`` is left, the files
written before are intact, no manifest is written for the stage, and a rerun completes
with the uninterrupted run's artifacts.  ``wsss-run`` exits with status 1 and that message.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config

from wsss_core import compat
from wsss_core.io import DiskFullError, load_cam, read_json, read_label_png
from wsss_core.pipeline import Pipeline, read_manifest
from wsss_core.pipeline.exact_resume import (ATOMIC_BACKEND, CHECKPOINT_KEY, RandomStateHook,
                                             atomic_checkpoints, capture_random_state,
                                             repair_last_checkpoint, restore_random_state)
from wsss_core.testing.faults import (KillPoint, disk_full, install, read_trace, run_killed,
                                      snapshot, temp_files)
from wsss_deeplab import testing as deeplab_testing

STAGES = ('classify', 'cams', 'labels', 'deeplab', 'test')
ITERS_PER_EPOCH = 2          # 16 training images, batch 8
EPOCHS = 3
SEG_ITERS, SEG_CHECKPOINT_EVERY = 4, 2
#: per stage: the files it is judged by (globs relative to its directory)
ARTIFACTS = {
    'classify': ('epoch_*.pth', 'model.pth'),
    'cams': ('cams/*.npz',),
    'labels': ('labels/*.png',),
    'deeplab': ('iter_*.pth', 'model.pth'),
    'test': ('logits/*.npz', 'predictions/*.png', 'miou.json'),
}
PER_IMAGE = {'cams': ('cams/*.npz',), 'labels': ('labels/*.png',),
             'test': ('logits/*.npz', 'predictions/*.png')}
CHAIN_SEEDS = (0, 1, 2)
registered = deeplab_testing.registered   # the plugin loader's fixture


def pipeline_cfg() -> dict:
    cfg = deeplab_testing.tiny_segmentation_pipeline(
        segmentor=dict(max_iters=SEG_ITERS, batch_size=4, crop_size=41, log_interval=1,
                       checkpoint_interval=SEG_CHECKPOINT_EVERY,
                       custom_hooks=[dict(type='RandomStateHook')]),
        test=dict(scales=(1.0,), flip=False))
    classify, cams, labels = cfg['stages'][:3]
    classify.update(max_epochs=EPOCHS, val_split='val')
    cams.update(batch_size=4)
    labels['refiners'] = [dict(type='DenseCRF', preset='psa')]
    return cfg


#: deeplab dies before iteration 2 (no checkpoint yet), 3 (right after one) or 4 (mid-way
#: after one); the chains take them in a seeded order
SEG_KILLS = random.Random(11).sample([2, 3, 4], 3)


def kill_points(seed: int) -> list:
    """One kill point per stage, drawn from ``seed``.  Classify: chain 0 dies mid-epoch after
    a checkpoint, chain 1 between epochs, chain 2 while a checkpoint is being written."""
    rng = random.Random(seed)
    kind = seed % 3
    if kind == 0:
        classify = KillPoint('classify', 'iteration', rng.choice([4, 6]))
    elif kind == 1:
        classify = KillPoint('classify', 'epoch', rng.choice([1, 2]))
    else:
        classify = KillPoint('classify', 'write', rng.choice([2, 3]), 'mid', ('epoch_*.pth',))
    points = [classify]
    for stage in ('cams', 'labels'):
        points.append(KillPoint(stage, 'write', rng.randint(2, 15), rng.choice(['before', 'mid']),
                                PER_IMAGE[stage]))
    points.append(KillPoint('deeplab', 'iteration', SEG_KILLS[seed % 3]))
    points.append(KillPoint('test', 'write', rng.randint(2, 15), rng.choice(['before', 'mid']),
                            PER_IMAGE['test']))
    return points


def _write_config(path: Path, cfg: dict) -> str:
    path.write_text('\n'.join(f'{k} = {v!r}' for k, v in cfg.items()) + '\n')
    return str(path)


def _run(cfg: dict, work_dir, **kw):
    return {r.name: r for r in Pipeline(Config(cfg), work_dir, progress=False, **kw).run()}


@pytest.fixture(scope='module')
def reference(tmp_path_factory, registered):
    """The uninterrupted run, in this process (its config file for the killed runs)."""
    root = tmp_path_factory.mktemp('faults')
    cfg = pipeline_cfg()
    work_dir = root / 'uninterrupted'
    res = _run(cfg, work_dir)
    assert {r.status for r in res.values()} == {'ran'}
    return cfg, _write_config(root / 'tiny.py', cfg), work_dir


# ----------------------------------------------------------------------------- checks
def _load(path: Path):
    """The content of an artifact (raises if it is incomplete)."""
    if path.suffix == '.pth':
        with compat.allow_mmengine_checkpoints():
            return torch.load(path, map_location='cpu', weights_only=True)
    if path.suffix == '.json':
        return read_json(path)
    if path.parent.name == 'cams':
        return load_cam(path)
    if path.suffix == '.npz':
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    if path.suffix == '.png':
        return read_label_png(path)
    return path.read_bytes()


def _assert_complete(stage_dir: Path, stage: str) -> None:
    for rel in snapshot(stage_dir, ARTIFACTS[stage]):
        _load(stage_dir / rel)
    for rel in snapshot(stage_dir, ('state.json', 'manifest.json')):
        read_json(stage_dir / rel)
    marker = stage_dir / 'last_checkpoint'
    if marker.exists():
        named = Path(marker.read_text().strip())
        assert named.is_file(), f'last_checkpoint names a missing file {named}'
        _load(named)


def _assert_equal(a, b, where: str) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_equal(a[k], b[k], f'{where}[{k}]')
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_equal(x, y, f'{where}[{i}]')
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=where)
    else:
        assert a == b, where


def _assert_same_artifacts(ref: Path, got: Path) -> None:
    """Every final artifact and manifest metric of ``got`` equals the uninterrupted run's."""
    finals = {'classify': ('model.pth',), 'deeplab': ('model.pth',)}
    for stage in STAGES:
        patterns = finals.get(stage, ARTIFACTS[stage])
        want = snapshot(ref / stage, patterns)
        assert sorted(snapshot(got / stage, patterns)) == sorted(want), stage
        for rel in want:
            _assert_equal(_load(ref / stage / rel), _load(got / stage / rel), f'{stage}/{rel}')
        mine, theirs = read_manifest(got / stage), read_manifest(ref / stage)
        assert mine is not None, f'{stage} did not finish'
        assert mine.get('metrics') == theirs.get('metrics') and mine['config_hash'] == theirs[
            'config_hash'] and mine['artifacts'] == theirs['artifacts'], stage


def _checkpoint_iter(stage_dir: Path):
    """The training iteration of the checkpoint a resume starts from (0 without one)."""
    marker = stage_dir / 'last_checkpoint'
    if not marker.exists():
        return 0
    name = Path(marker.read_text().strip()).stem      # epoch_2 / iter_2
    kind, number = name.split('_')
    return int(number) * (ITERS_PER_EPOCH if kind == 'epoch' else 1)


def _interrupted_write(point: KillPoint, trace: list):
    """``(temporary file prefix, target)`` of the write a 'mid' kill interrupted (the last
    file that run began to write in the stage), or None."""
    if point.kind != 'write' or point.phase != 'mid':
        return None
    rel = Path([e['file'] for e in trace
                if e['event'] == 'write' and e['stage'] == point.stage][-1])
    folder = Path(point.stage) / rel.parent
    return (folder / f'.{rel.name}.').as_posix(), (folder / rel.name).as_posix()


# ----------------------------------------------------------------------------- the kills
@pytest.mark.parametrize('seed', CHAIN_SEEDS)
def test_killed_in_every_stage_resumes_to_the_uninterrupted_artifacts(reference, tmp_path,
                                                                      monkeypatch, seed):
    cfg, cfg_path, ref_dir = reference
    work = tmp_path / 'run'
    args = [cfg_path, '--work-dir', str(work), '--no-progress', '--resume']
    log = tmp_path / 'runs.log'
    before = None   # (stage, kill point, snapshot after the kill, checkpoint iteration)
    for i, point in enumerate(kill_points(seed)):
        trace = tmp_path / f'trace{i}.jsonl'
        # one run per chain starts a fresh interpreter, as `python -m wsss_core.cli` does
        code = run_killed(args, point, trace, fork=i != seed % len(STAGES), log=log)
        assert code == -signal.SIGKILL, (point.describe(), log.read_text()[-3000:])
        events = read_trace(trace)
        if before is not None:
            _check_resumed(work, events, *before)
        before = _check_killed(work, point, events, seed)
    # the last resume, here (traced), finishes the run
    final = tmp_path / 'final.jsonl'
    with monkeypatch.context() as patch:
        install(None, str(final), setattr=patch.setattr)
        res = _run(cfg, work, resume=True)
    assert [res[s].status for s in STAGES] == ['skipped'] * 4 + ['resumed']
    _check_resumed(work, read_trace(final), *before)
    assert temp_files(work) == []
    _assert_same_artifacts(ref_dir, work)


def _check_killed(work: Path, point: KillPoint, events: list, seed: int):
    """Right after the kill in ``point.stage``; returns what :func:`_check_resumed` needs."""
    stage = point.stage
    done = STAGES[:STAGES.index(stage)]
    assert all(read_manifest(work / s) is not None for s in done)
    assert read_manifest(work / stage) is None, f'{stage} was killed but has a manifest'
    _assert_complete(work / stage, stage)
    temps = temp_files(work)
    interrupted = _interrupted_write(point, events)
    if interrupted is None:
        assert temps == [], temps
    else:   # killed between the write and the rename: the .tmp is there, the file is not
        prefix, target = interrupted
        assert len(temps) == 1 and temps[0].startswith(prefix), (temps, prefix)
        assert not (work / target).exists(), target
    ckpt = _checkpoint_iter(work / stage)
    ran = [e['iter'] for e in events if e['event'] == 'iteration' and e['stage'] == stage]
    lost = [it for it in ran if it >= ckpt]   # trained after the last checkpoint: redone
    kept = snapshot(work / stage, ARTIFACTS[stage])
    print(f'chain {seed}: killed at {point.describe()}; complete files kept: {len(kept)}; '
          f'training iterations to redo: {len(lost)}')
    if point.kind == 'iteration':       # this process started the stage: index - 1 ran
        assert len(ran) == point.index - 1 and len(lost) == point.index - 1 - ckpt
        if stage == 'classify':
            assert 0 < len(lost) < ITERS_PER_EPOCH, 'mid-epoch: part of one epoch is redone'
    elif point.kind == 'epoch':
        assert lost == [], 'a kill between epochs loses no training'
    elif stage == 'classify':           # killed writing the checkpoint of epoch `index`
        assert ckpt == (point.index - 1) * ITERS_PER_EPOCH and len(lost) == ITERS_PER_EPOCH
    return stage, point, kept, ckpt


def _check_resumed(work: Path, events: list, stage: str, point: KillPoint, kept: dict,
                   ckpt: int) -> None:
    """After the run that resumed ``stage``: nothing complete rewritten, no redone work."""
    now = snapshot(work / stage, ARTIFACTS[stage])
    for rel, stat in kept.items():
        if rel in now:                  # checkpoints may have been rotated away since
            assert now[rel] == stat, f'{stage}/{rel} was rewritten by the resumed run'
        else:
            assert rel.endswith('.pth') and rel != 'model.pth', f'{stage}/{rel} vanished'
    if stage in PER_IMAGE:
        kept_images = {rel for rel in kept if not rel.endswith('.json')}
        assert kept_images and all(rel in now for rel in kept_images)
    written = {e['file'] for e in events if e['event'] == 'write' and e['stage'] == stage}
    assert not written & set(kept), f'{stage}: complete files written again'
    iters = [e['iter'] for e in events if e['event'] == 'iteration' and e['stage'] == stage]
    if stage in ('classify', 'deeplab'):
        total = EPOCHS * ITERS_PER_EPOCH if stage == 'classify' else SEG_ITERS
        assert iters == list(range(ckpt, total)), (point.describe(), iters, ckpt)
    temps = [t for t in temp_files(work) if t.startswith(f'{stage}/')]
    assert temps == [], f'{stage}: temporary files left after the resume: {temps}'


# ----------------------------------------------------------------------------- disk full
def _copy_stages(ref: Path, work: Path, *stages) -> None:
    for name in stages:
        shutil.copytree(ref / name, work / name)


@pytest.mark.parametrize('stage,folder,nth', [('cams', 'cams', 6), ('labels', 'labels', 9)])
def test_full_disk_stops_with_a_clear_error_and_loses_nothing(reference, tmp_path, stage,
                                                              folder, nth):
    cfg, _, ref_dir = reference
    cfg = dict(cfg, stages=cfg['stages'][:3])      # classify -> cams -> labels
    work = tmp_path / 'run'
    _copy_stages(ref_dir, work, *STAGES[:STAGES.index(stage)])
    earlier = {s: snapshot(work / s) for s in STAGES[:STAGES.index(stage)]}
    with disk_full(work / stage / folder, nth) as full, \
            pytest.raises(DiskFullError) as err:
        _run(cfg, work)
    message = str(err.value)
    assert full['path'] and full['path'] in message
    assert 'disk full' in message and 'no space left' in message.lower()
    assert err.value.filename == full['path']
    assert not Path(full['path']).exists() and temp_files(work) == []
    assert read_manifest(work / stage) is None
    for s, snap in earlier.items():                 # earlier stages untouched
        assert snapshot(work / s) == snap
    written = snapshot(work / stage, (f'{folder}/*',))
    assert len(written) == nth - 1                  # the files before the failed one ...
    contents = {rel: (work / stage / rel).read_bytes() for rel in written}
    for rel in written:                             # ... complete, as the uninterrupted run's
        _assert_equal(_load(ref_dir / stage / rel), _load(work / stage / rel), rel)

    res = _run(cfg, work)                           # space freed: the rerun completes
    assert res[stage].status == 'resumed'
    assert res[stage].manifest['counts']['computed'] == 16 - (nth - 1)
    assert {rel: st for rel, st in snapshot(work / stage, (f'{folder}/*',)).items()
            if rel in written} == written           # not rewritten
    assert {rel: (work / stage / rel).read_bytes() for rel in written} == contents
    for rel in snapshot(ref_dir / stage, (f'{folder}/*',)):
        _assert_equal(_load(ref_dir / stage / rel), _load(work / stage / rel), rel)
    assert temp_files(work) == []


def test_wsss_run_reports_a_full_disk_naming_the_file(reference, tmp_path, capsys):
    from wsss_core.cli import main
    _, cfg_path, ref_dir = reference
    work = tmp_path / 'run'
    _copy_stages(ref_dir, work, 'classify')
    with disk_full(work / 'cams' / 'cams', 3) as full:
        code = main([cfg_path, '--work-dir', str(work), '--no-progress'])
    err = capsys.readouterr().err
    assert code == 1
    assert (f"wsss-run: stage 'cams' failed: disk full: no space left on the device to "
            f'write {full["path"]}') in err
    assert len(snapshot(work / 'cams', ('cams/*',))) == 2 and temp_files(work) == []


def test_a_dead_writers_temporary_file_is_removed_by_the_next_writer(tmp_path):
    """What a kill between write and rename leaves is cleared by the next run's first write
    into that folder; a live writer's file and another machine's are left alone."""
    from wsss_core import io
    child = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                           capture_output=True, text=True, check=True)
    dead = int(child.stdout)
    host = io._host_tag()
    stale = tmp_path / f'.a.npz.{dead}@{host}.abc123.tmp'
    live = tmp_path / f'.b.npz.{os.getpid()}@{host}.abc123.tmp'
    other = tmp_path / f'.c.npz.{dead}@elsewhere-1.abc123.tmp'
    for p in (stale, live, other):
        p.write_bytes(b'partial')
    io._SWEPT.discard((os.getpid(), os.fspath(tmp_path)))
    io.write_json(tmp_path / 'x.json', {'a': 1})
    assert not stale.exists() and live.exists() and other.exists()
    assert json.loads((tmp_path / 'x.json').read_text()) == {'a': 1}


def test_kill_points_cover_every_stage_type():
    """Three chains: each stage type killed three times; training in all three ways."""
    points = [p for seed in CHAIN_SEEDS for p in kill_points(seed)]
    assert {s: sum(p.stage == s for p in points) for s in STAGES} == dict.fromkeys(STAGES, 3)
    assert {p.kind for p in points if p.stage == 'classify'} == {'iteration', 'epoch', 'write'}
    assert {p.index for p in points if p.stage == 'deeplab'} == {2, 3, 4}


# ----------------------------------------------------------------------------- exact resume
@pytest.fixture(autouse=True)
def _keep_random_state():
    """Some tests here reseed the global generators: give the session its states back."""
    saved = capture_random_state()
    yield
    restore_random_state(saved)


def _draws() -> tuple:
    return torch.rand(4), np.random.randn(3), random.gauss(0.0, 1.0), random.random()


def test_random_state_survives_a_weights_only_checkpoint(tmp_path):
    """Generator states (a cached Gaussian in NumPy and Python included) go through
    torch.save / torch.load(weights_only=True) and give the same numbers again."""
    np.random.randn()            # leaves NumPy's second Box-Muller value cached
    random.gauss(0.0, 1.0)       # and Python's
    torch.save({CHECKPOINT_KEY: capture_random_state()}, tmp_path / 'c.pth')
    want = _draws()
    torch.manual_seed(1), np.random.seed(2), random.seed(3)      # a fresh process's seeds
    restore_random_state(torch.load(tmp_path / 'c.pth', weights_only=True)[CHECKPOINT_KEY])
    _assert_equal(list(_draws()), list(want), 'draws')


def test_random_state_hook_restores_epoch_loops_at_once_and_iteration_loops_after_the_replay():
    """Epoch-based: the states are back when the checkpoint is loaded.  Iteration-based:
    mmengine first replays the batches already trained on (drawing numbers), so the states
    go back right before the first new batch, which then equals the uninterrupted run's."""
    hook = RandomStateHook()
    torch.manual_seed(0)
    checkpoint = dict(meta=dict(iter=2))
    hook.before_save_checkpoint(None, checkpoint)
    want = torch.rand(2)

    torch.manual_seed(5)
    hook.after_load_checkpoint(SimpleNamespace(train_loop=SimpleNamespace()), checkpoint)
    assert torch.equal(torch.rand(2), want)

    torch.manual_seed(5)
    loop = SimpleNamespace(dataloader_iterator=iter(lambda: torch.rand(2), None))
    hook.after_load_checkpoint(SimpleNamespace(train_loop=loop), checkpoint)
    replayed = [next(loop.dataloader_iterator) for _ in range(2)]  # the fast-forward
    assert not any(torch.equal(r, want) for r in replayed)
    assert torch.equal(next(loop.dataloader_iterator), want)


@pytest.mark.parametrize('marker', [None, '', 'gone/epoch_9.pth'])
def test_a_broken_last_checkpoint_is_pointed_at_the_newest_checkpoint(tmp_path, marker):
    """A kill while mmengine rewrote ``last_checkpoint`` in place (empty), before it first
    wrote it (missing), or a moved run (a path that is not there): resume uses the newest."""
    for name in ('epoch_2.pth', 'epoch_10.pth', 'model.pth', '.epoch_11.pth.1@h.abc.tmp'):
        (tmp_path / name).write_bytes(b'x')
    if marker is not None:
        (tmp_path / 'last_checkpoint').write_text(marker)
    assert repair_last_checkpoint(tmp_path) == tmp_path / 'epoch_10.pth'
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'epoch_10.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_2.pth'))   # valid: kept
    assert repair_last_checkpoint(tmp_path) == tmp_path / 'epoch_2.pth'
    assert repair_last_checkpoint(tmp_path / 'nothing') is None


def test_checkpoint_hooks_write_atomically_unless_they_name_a_store():
    cfg = atomic_checkpoints(dict(type='CheckpointHook', interval=1))
    assert cfg['backend_args'] == dict(backend=ATOMIC_BACKEND)
    for own in (dict(out_dir='s3://bucket/run'), dict(backend_args=dict(backend='petrel'))):
        assert atomic_checkpoints(dict(type='CheckpointHook', **own)).get('backend_args') == \
            own.get('backend_args')
