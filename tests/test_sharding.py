"""Sharded offline stages: the split, WSSS_SHARD processes, and a killed shard's rerun.

The acceptance test kills shard 1 of 2 of MakeCAMs (SIGKILL, in a subprocess, after it
wrote 3 of its 8 CAMs) and shows that rerunning that shard computes exactly its 5 missing
images, leaves every file already written untouched, and completes the stage with CAMs
equal to a single-process run's.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from wsss_core.config import load_config
from wsss_core.io import load_cam, read_json, read_label_png
from wsss_core.pipeline import Pipeline, StageError, read_manifest
from wsss_core.pipeline.pipeline import WorkDirBusyError, work_dir_lock
from wsss_core.pipeline.sharding import Shard, current_shard, parse_shard, shard, sum_counts
from wsss_core.testing import tiny_data_cfg, tiny_pipeline_cfg

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------- the split
@pytest.mark.parametrize('count', [1, 2, 3, 5, 16, 20])
def test_shards_partition_the_items_evenly(count):
    items = list(range(16))
    parts = [Shard(i, count).take(items) for i in range(count)]
    flat = [x for part in parts for x in part]
    assert sorted(flat) == items and len(flat) == len(set(flat))  # each item exactly once
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    assert parts[0][:2] == [0, count][:len(parts[0][:2])]  # stride: 0, n, 2n, ...


def test_parse_shard_and_its_errors():
    assert parse_shard('1/4') == Shard(1, 4, 'env') and parse_shard('1/4').independent
    assert parse_shard(' 0/1 ') == Shard(0, 1, 'none') and not parse_shard('0/1').split
    assert parse_shard('') == Shard()
    for bad in ('4/4', '-1/2', '1', 'a/b', '1/0'):
        with pytest.raises(ValueError, match='WSSS_SHARD'):
            parse_shard(bad)


def test_current_shard_reads_the_environment(monkeypatch):
    monkeypatch.setenv('WSSS_SHARD', '2/3')
    assert current_shard() == Shard(2, 3, 'env')
    assert shard('abcdefg') == ['c', 'f']
    monkeypatch.delenv('WSSS_SHARD')
    assert current_shard() == Shard() and shard('abc') == ['a', 'b', 'c']


def test_sum_counts_adds_numbers_and_keeps_the_rest():
    recs = [dict(counts=dict(images=8, computed=3, note='a')), dict(counts=dict(images=8)),
            dict(counts=dict(computed=5, note='b', flag=True))]
    assert sum_counts(recs) == dict(images=16, computed=8, note='a', flag=True)


# ----------------------------------------------------------------------------- set-up
def _write_config(path, cfg: dict) -> str:
    path.write_text('\n'.join(f'{k} = {v!r}' for k, v in cfg.items()) + '\n')
    return str(path)


def _run(cfg_path, work_dir, **kw):
    return {r.name: r for r in Pipeline(load_config(cfg_path), work_dir, progress=False,
                                        **kw).run()}


def _cams(work_dir):
    return {p.stem: load_cam(p)[0] for p in sorted((work_dir / 'cams' / 'cams').glob('*.npz'))}


def _labels(work_dir):
    return {p.stem: read_label_png(p)
            for p in sorted((work_dir / 'labels' / 'labels').glob('*.png'))}


def _mtimes(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()}


KILL_SCRIPT = textwrap.dedent('''
    import os, signal, sys
    import wsss_core.pipeline.make_cams as make_cams
    real_save, saved = make_cams.save_cam, []

    def save_then_die(path, *args, **kwargs):
        if len(saved) == {after}:
            os.kill(os.getpid(), signal.SIGKILL)   # no clean-up, as a lost machine
        real_save(path, *args, **kwargs)
        saved.append(path)

    make_cams.save_cam = save_then_die
    from wsss_core.cli import main
    sys.exit(main([{cfg!r}, '--work-dir', {work_dir!r}, '--no-progress']))
''')


@pytest.fixture(scope='module')
def reference(tmp_path_factory, core_registered):
    """A finished single-process run (classify -> cams -> labels) and its config file."""
    root = tmp_path_factory.mktemp('sharding')
    cfg = tiny_pipeline_cfg(tiny_data_cfg())
    cfg['stages'] = cfg['stages'][:3]
    cfg['stages'][0]['val_split'] = None
    cfg_path = _write_config(root / 'tiny.py', cfg)
    work_dir = root / 'single'
    res = _run(cfg_path, work_dir)
    assert {r.status for r in res.values()} == {'ran'}
    return cfg_path, work_dir


def _with_stages(reference, tmp_path, *stages):
    """A new work dir holding copies of ``stages`` of the reference run."""
    work_dir = tmp_path / 'sharded'
    for name in stages:
        shutil.copytree(reference[1] / name, work_dir / name)
    return work_dir


# ----------------------------------------------------------------------------- acceptance
def test_killed_shard_of_make_cams_reruns_only_its_missing_images(reference, tmp_path,
                                                                     monkeypatch):
    cfg_path, single = reference
    work_dir = _with_stages(reference, tmp_path, 'classify')
    cam_dir = work_dir / 'cams' / 'cams'
    ids = sorted(_cams(single))
    assert len(ids) == 16

    # shard 0 of 2 (this process): its 8 images, a record, no manifest yet; it stops there
    monkeypatch.setenv('WSSS_SHARD', '0/2')
    res = _run(cfg_path, work_dir)
    assert list(res) == ['classify', 'cams'] and res['cams'].status == 'shard done'
    assert read_manifest(work_dir / 'cams') is None
    assert read_json(work_dir / 'cams' / 'shards' / '0-of-2.json')['counts'] == \
        dict(images=8, computed=8, reused=0)

    # shard 1 of 2 in its own process, killed after writing 3 of its 8 CAMs
    env = dict(os.environ, WSSS_SHARD='1/2', OMP_NUM_THREADS='1')
    code = KILL_SCRIPT.format(after=3, cfg=cfg_path, work_dir=str(work_dir))
    out = subprocess.run([sys.executable, '-c', code], env=env, cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == -signal.SIGKILL, out.stderr[-3000:]
    written = _mtimes(cam_dir)
    assert len(written) == 8 + 3 and not [n for n in written if not n.endswith('.npz')]
    assert not (work_dir / 'cams' / 'shards' / '1-of-2.json').exists()
    assert read_manifest(work_dir / 'cams') is None

    # the rerun of shard 1 computes its 5 missing images only, then completes the stage
    monkeypatch.setenv('WSSS_SHARD', '1/2')
    res = _run(cfg_path, work_dir)['cams']
    assert res.status == 'resumed'
    assert read_json(work_dir / 'cams' / 'shards' / '1-of-2.json')['counts'] == \
        dict(images=8, computed=5, reused=3)
    assert res.manifest['counts'] == dict(images=16, computed=13, reused=3)
    assert res.manifest['shards'] == 2
    after = _mtimes(cam_dir)
    assert {n: after[n] for n in written} == written          # nothing rewritten
    assert len(after) == 16
    cams = _cams(work_dir)
    assert sorted(cams) == ids
    for key in ids:
        np.testing.assert_allclose(cams[key], _cams(single)[key], atol=2e-3)

    # finished: a further shard process (or a plain run) skips the stage
    assert _run(cfg_path, work_dir)['cams'].status == 'skipped'


def test_plain_rerun_after_a_lost_shard_redoes_only_the_missing_images(reference, tmp_path,
                                                                         monkeypatch):
    cfg_path, single = reference
    work_dir = _with_stages(reference, tmp_path, 'classify')
    monkeypatch.setenv('WSSS_SHARD', '1/2')
    assert _run(cfg_path, work_dir)['cams'].status == 'shard done'   # shard 0 never ran
    monkeypatch.delenv('WSSS_SHARD')
    res = _run(cfg_path, work_dir, only=['cams'])['cams']
    assert res.status == 'resumed'
    assert res.manifest['counts'] == dict(images=16, computed=8, reused=8)
    assert sorted(_cams(work_dir)) == sorted(_cams(single))


def test_refine_labels_in_two_shards_equals_one_process(reference, tmp_path, monkeypatch):
    cfg_path, single = reference
    work_dir = _with_stages(reference, tmp_path, 'classify', 'cams')
    statuses = []
    for index in (1, 0):   # any order: the shard that completes the set merges
        monkeypatch.setenv('WSSS_SHARD', f'{index}/2')
        res = _run(cfg_path, work_dir)
        assert res['cams'].status == 'skipped'
        statuses.append(res['labels'].status)
    assert statuses == ['shard done', 'resumed']   # the second found the first's start
    manifest = read_manifest(work_dir / 'labels')
    assert manifest['counts'] == dict(images=16, computed=16)
    assert manifest['artifacts'] == read_manifest(single / 'labels')['artifacts']
    got, want = _labels(work_dir), _labels(single)
    assert sorted(got) == sorted(want) and len(got) == 16
    for key in want:
        np.testing.assert_array_equal(got[key], want[key])


def test_unfinished_stage_that_does_not_shard_stops_a_shard_process(reference, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setenv('WSSS_SHARD', '0/2')
    with pytest.raises(StageError, match="'classify'.*does not split into shards.*WSSS_SHARD"):
        _run(reference[0], tmp_path / 'fresh')
    assert not (tmp_path / 'fresh' / 'classify').exists()   # nothing started or moved


def test_shards_share_the_work_dir_but_exclude_a_plain_run(tmp_path, monkeypatch):
    hold = textwrap.dedent(f'''
        import os, sys, time
        os.environ['WSSS_SHARD'] = '0/2'
        from wsss_core.pipeline.pipeline import work_dir_lock
        with work_dir_lock({str(tmp_path)!r}):
            print('held', flush=True)
            sys.stdin.read()
    ''')
    proc = subprocess.Popen([sys.executable, '-c', hold], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stdout.readline().strip() == 'held'
        monkeypatch.delenv('WSSS_SHARD', raising=False)
        with pytest.raises(WorkDirBusyError, match='in use'):
            with work_dir_lock(tmp_path):
                pass
        monkeypatch.setenv('WSSS_SHARD', '0/2')
        with pytest.raises(WorkDirBusyError, match='in use by pid'):  # the same shard twice
            with work_dir_lock(tmp_path):
                pass
        monkeypatch.setenv('WSSS_SHARD', '1/2')
        with work_dir_lock(tmp_path):                                  # another shard: fine
            pass
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def test_random_walk_labels_takes_only_its_share(tmp_path, tiny_data_cfg, monkeypatch):
    """The stage's loop sees shard 1 of 3 of the images, minus those already labelled."""
    from mmengine.config import Config

    import wsss_core.irn.random_walk_labels as rw
    from wsss_core.datasets import build_dataset
    from wsss_core.pipeline.manifest import write_manifest
    from wsss_core.pipeline.stage import StageContext

    class Walls:
        data_preprocessor = None     # the BoundaryModel protocol's members

        def boundary_map(self, img):  # never called: process is replaced below
            raise AssertionError

    write_manifest(tmp_path / 'cams', dict(artifacts=dict(cams='cams', split='train')))
    write_manifest(tmp_path / 'irn', dict(artifacts=dict(weights='model.pth', model={})))
    from wsss_core.pipeline.artifacts import TrainedModel
    monkeypatch.setattr(TrainedModel, 'load', lambda self, device='cpu': Walls())
    done = []
    monkeypatch.setattr(rw.RandomWalkLabels, 'process',
                        lambda self, ctx, index: done.append(index))
    ids = [r.img_id for r in build_dataset(tiny_data_cfg, split='train').records]
    (tmp_path / 'rw' / 'labels').mkdir(parents=True)
    (tmp_path / 'rw' / 'labels' / f'{ids[4]}.png').write_bytes(b'')  # labelled before
    monkeypatch.setenv('WSSS_SHARD', '1/3')
    stage = rw.RandomWalkLabels('rw', cams='cams', irn='irn')
    ctx = StageContext(cfg=Config(dict(data=tiny_data_cfg)), work_dir=tmp_path,
                       stage_dir=tmp_path / 'rw', progress=False)
    record = stage.run(ctx)
    assert done == [1, 7, 10, 13]                      # 1, 4, 7, 10, 13 without 4
    assert record['counts'] == dict(images=5, computed=4, reused=1)
