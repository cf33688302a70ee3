"""Checksums in stage manifests: recorded for every artifact, verified before a finished stage
is skipped or read, reported by ``wsss-run --verify``; a corrupted, truncated or deleted file
is named with what to do.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil

import pytest
from mmengine.config import Config

from wsss_core.pipeline import Pipeline
from wsss_core.pipeline.checksums import (CorruptArtifactError, is_recorded, stage_files,
                                          verify_stage)
from wsss_core.pipeline.manifest import read_manifest, write_manifest
from wsss_core.testing import tiny_data_cfg, tiny_pipeline_cfg

STAGES = ('classify', 'cams', 'labels', 'eval_labels')


def run(cfg, work_dir, **kw):
    return {r.name: r for r in Pipeline(Config(cfg), work_dir, progress=False, **kw).run()}


@pytest.fixture(scope='module')
def finished(tmp_path_factory, core_registered):
    """A finished classify -> cams -> labels -> eval_labels run and its config file."""
    root = tmp_path_factory.mktemp('checksums')
    cfg = tiny_pipeline_cfg(tiny_data_cfg(), epochs=1)
    cfg['stages'][0]['val_split'] = None
    res = run(cfg, root / 'work')
    assert {r.status for r in res.values()} == {'ran'}
    cfg_path = root / 'tiny.py'
    cfg_path.write_text('\n'.join(f'{k} = {v!r}' for k, v in cfg.items()) + '\n')
    return cfg, str(cfg_path), root / 'work'


@pytest.fixture
def work(finished, tmp_path):
    """A private copy of the finished work dir (so a test may damage it)."""
    cfg, cfg_path, src = finished
    dst = tmp_path / 'work'
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns('.lock'))
    return cfg, cfg_path, dst


def cli(*args):
    from wsss_core.cli import main
    return main(list(args))


def first_file(folder, suffix):
    return sorted(p for p in folder.iterdir() if p.suffix == suffix)[0]


def flip_byte(path, offset=None):
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


# ----------------------------------------------------------------------------- recording
def test_manifest_records_size_and_sha256_of_every_artifact(finished):
    _, _, work_dir = finished
    for name in STAGES:
        stage_dir = work_dir / name
        files = read_manifest(stage_dir)['files']
        # independently: every file under the stage dir minus the records and mmengine's logs
        expected = {}
        for dirpath, _, names in os.walk(stage_dir):
            for fname in names:
                rel = os.path.relpath(os.path.join(dirpath, fname), stage_dir)
                top = rel.split(os.sep)[0]
                if rel in ('manifest.json', 'state.json', 'stage.log') or top[:8].isdigit() or \
                        rel in ('last_checkpoint',) or (rel.endswith('.pth') and
                                                        rel.startswith(('epoch_', 'iter_'))):
                    continue
                data = (stage_dir / rel).read_bytes()
                expected[rel.replace(os.sep, '/')] = dict(
                    sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
        assert files == expected, name
    classify = read_manifest(work_dir / 'classify')['files']
    assert 'model.pth' in classify and not {'epoch_1.pth', 'last_checkpoint'} & set(classify)
    assert (work_dir / 'classify' / 'epoch_1.pth').is_file()   # present, just not recorded
    assert len([f for f in read_manifest(work_dir / 'cams')['files']
                if f.startswith('cams/') and f.endswith('.npz')]) == 16
    assert [d for d in os.listdir(work_dir / 'classify') if d[:8].isdigit()], \
        'the mmengine log folder this test excludes exists'
    assert (work_dir / 'classify' / 'stage.log').is_file()   # the stage's log, not recorded


def test_what_is_recorded_and_what_is_not(tmp_path):
    keep = ['model.pth', 'cams/a.npz', 'labels/sub/b.png', 'sub/epoch_3.pth',
            'metrics.json', 'shardsx/c.json', 'run_20240101.py']
    skip = ['manifest.json', 'state.json', 'epoch_3.pth', 'iter_200.pth', 'last_checkpoint', 'shards/0-of-2.json', 'shards/.lock', '.lock',
            'cams/.a.npz.x1y2.tmp', '20240101_120000/20240101_120000.log',
            '20240101_120000/vis_data/scalars.json', '20240101_120000.py', '.hidden/x']
    for rel in keep + skip:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(rel.encode())
    assert stage_files(tmp_path) == sorted(keep)
    assert all(is_recorded(r) for r in keep) and not any(is_recorded(r) for r in skip)


def test_merged_manifest_of_a_sharded_stage_has_every_shards_files(finished, tmp_path,
                                                                   monkeypatch):
    cfg, _, src = finished
    work_dir = tmp_path / 'sharded'
    shutil.copytree(src / 'classify', work_dir / 'classify')
    two = dict(cfg, stages=cfg['stages'][:2])
    monkeypatch.setenv('WSSS_SHARD', '0/2')
    assert run(two, work_dir)['cams'].status == 'shard done'
    monkeypatch.setenv('WSSS_SHARD', '1/2')
    run(two, work_dir)
    files = read_manifest(work_dir / 'cams')['files']
    cams = sorted(f'cams/{p.name}' for p in (work_dir / 'cams' / 'cams').iterdir())
    assert len(cams) == 16 and sorted(files) == cams        # both shards' CAMs, no records
    verify_stage(work_dir / 'cams', read_manifest(work_dir / 'cams'))


# ----------------------------------------------------------------------------- clean runs
def test_clean_rerun_verifies_and_skips_and_verify_says_ok(work, capsys):
    cfg, cfg_path, work_dir = work
    assert {r.status for r in run(cfg, work_dir).values()} == {'skipped'}
    assert cli(cfg_path, '--work-dir', str(work_dir), '--verify') == 0
    out = capsys.readouterr().out
    for name in STAGES:
        assert f'{name}: OK (' in out
    assert 'BAD' not in out


# ----------------------------------------------------------------------------- damage
def _flip_cam(work_dir):
    path = first_file(work_dir / 'cams' / 'cams', '.npz')
    flip_byte(path)
    return 'cams', f'cams/{path.name}', 'content changed', 'labels'


def _truncate_label(work_dir):
    path = first_file(work_dir / 'labels' / 'labels', '.png')
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return 'labels', f'labels/{path.name}', f'truncated, {len(data) // 2} bytes', 'eval_labels'


def _delete_label(work_dir):
    path = first_file(work_dir / 'labels' / 'labels', '.png')
    path.unlink()
    return 'labels', f'labels/{path.name}', 'missing', 'eval_labels'


def _corrupt_checkpoint(work_dir):
    flip_byte(work_dir / 'classify' / 'model.pth')
    return 'classify', 'model.pth', 'content changed', 'cams'


DAMAGE = [_flip_cam, _truncate_label, _delete_label, _corrupt_checkpoint]


@pytest.mark.parametrize('damage', DAMAGE, ids=lambda f: f.__name__[1:])
def test_damage_is_reported_by_file_by_the_next_run_that_reads_it(work, damage):
    cfg, _, work_dir = work
    stage, rel, problem, reader = damage(work_dir)
    with pytest.raises(CorruptArtifactError) as info:
        run(cfg, work_dir, only=[reader])          # the reader redoes, reading the stage
    msg = str(info.value)
    assert f"stage '{stage}'" in msg and f'{rel}: {problem}' in msg
    assert f'--stages {stage}' in msg
    assert read_manifest(work_dir / reader) is not None, 'the reader moved nothing aside'
    assert not (work_dir / '.superseded').exists()


@pytest.mark.parametrize('damage', DAMAGE, ids=lambda f: f.__name__[1:])
def test_damage_is_reported_by_verify(work, damage, capsys):
    _, cfg_path, work_dir = work
    stage, rel, problem, _ = damage(work_dir)
    assert cli(cfg_path, '--work-dir', str(work_dir), '--verify') == 1
    out = capsys.readouterr().out
    assert f'{stage}: BAD, 1 of ' in out and f'  {rel}: {problem}' in out
    assert f'wsss-run CONFIG --stages {stage}' in out
    for other in set(STAGES) - {stage}:
        assert f'{other}: OK (' in out


def test_a_plain_rerun_stops_at_the_damaged_finished_stage_and_the_cli_exits_1(work, capsys):
    cfg, cfg_path, work_dir = work
    _, rel, _, _ = _corrupt_checkpoint(work_dir)
    with pytest.raises(CorruptArtifactError, match=rel):
        run(cfg, work_dir)                          # classify is skipped only if it verifies
    assert cli(cfg_path, '--work-dir', str(work_dir), '--no-progress') == 1
    err = capsys.readouterr().err
    assert "stage 'classify'" in err and 'model.pth: content changed' in err
    # redoing that stage, as the message says, repairs the run
    res = run(cfg, work_dir, only=['classify'])
    assert res['classify'].status == 'ran'
    assert cli(cfg_path, '--work-dir', str(work_dir), '--verify') == 0


def test_a_damaged_manifest_is_never_taken_for_an_unfinished_stage(work, capsys):
    """A truncated manifest.json (with a changed CAM beside it) stops the run naming it
    instead of resuming the stage over the changed file and recording it as good; --verify
    says BAD; redoing the stage as the message says repairs the run."""
    from wsss_core.pipeline.manifest import DamagedManifestError
    cfg, cfg_path, work_dir = work
    flip_byte(first_file(work_dir / 'cams' / 'cams', '.npz'))
    manifest = work_dir / 'cams' / 'manifest.json'
    manifest.write_bytes(manifest.read_bytes()[:40])
    with pytest.raises(DamagedManifestError, match=r"cams.manifest\.json.*--stages cams"):
        run(cfg, work_dir)
    assert cli(cfg_path, '--work-dir', str(work_dir), '--verify') == 1
    assert "cams: BAD, " in capsys.readouterr().out
    res = run(cfg, work_dir, only=['cams'])
    assert res['cams'].status == 'ran'
    assert (work_dir / '.superseded' / 'cams').is_dir()      # the old files kept aside
    assert cli(cfg_path, '--work-dir', str(work_dir), '--verify') == 0


# ----------------------------------------------------------------------------- old manifests
def test_manifest_without_checksums_still_loads_and_is_logged_once(work, caplog, capsys):
    cfg, cfg_path, work_dir = work
    path = work_dir / 'cams' / 'manifest.json'
    manifest = json.loads(path.read_text())
    del manifest['files']
    path.write_text(json.dumps(manifest))
    with caplog.at_level(logging.INFO, logger='wsss'):
        res = run(cfg, work_dir, only=['labels', 'eval_labels'])
    assert res['labels'].status == 'ran' and res['cams'].status == 'not selected'
    notes = [r for r in caplog.records if 'predates checksums' in r.getMessage()]
    assert len(notes) == 1 and '[cams]' in notes[0].getMessage()
    assert cli(cfg_path, '--work-dir', str(work_dir), '--verify') == 0
    assert 'cams: no checksums' in capsys.readouterr().out


def test_files_are_hashed_once_per_process(work, monkeypatch):
    import wsss_core.pipeline.checksums as checksums
    _, _, work_dir = work
    calls = []
    real = checksums.file_digest
    monkeypatch.setattr(checksums, 'file_digest', lambda p: calls.append(p) or real(p))
    manifest = read_manifest(work_dir / 'cams')
    verify_stage(work_dir / 'cams', manifest)
    assert len(calls) == len(manifest['files']) == 16
    verify_stage(work_dir / 'cams', manifest)
    assert len(calls) == 16, 'verified again'
    (work_dir / 'cams' / 'notes.txt').write_text('a file the stage wrote')
    write_manifest(work_dir / 'cams', {k: v for k, v in manifest.items() if k != 'files'})
    calls.clear()
    verify_stage(work_dir / 'cams', read_manifest(work_dir / 'cams'))   # a new record
    assert len(calls) == 17
