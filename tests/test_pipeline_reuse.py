"""``--reuse-from``: stages finished in another work dir with the same config hash are copied,
not run (wsss_core.pipeline.reuse)."""
from __future__ import annotations

import pytest
from mmengine.config import Config

from wsss_core.pipeline import Pipeline, read_manifest
from wsss_core.pipeline.checksums import CorruptArtifactError
from wsss_core.testing import tiny_pipeline_cfg


def run(cfg, work_dir, **kw):
    return {r.name: r for r in Pipeline(Config(cfg), work_dir, progress=False, **kw).run()}


@pytest.fixture
def source(tmp_path, tiny_data_cfg):
    cfg = tiny_pipeline_cfg(tiny_data_cfg)
    results = run(cfg, tmp_path / 'first')
    return cfg, tmp_path / 'first', results


def test_every_finished_stage_is_reused_with_its_files_and_metrics(source, tmp_path):
    cfg, first, done = source
    before = {p: p.stat().st_mtime_ns for p in first.rglob('*') if p.is_file()}
    res = run(cfg, tmp_path / 'second', reuse_from=[first])
    assert {r.status for r in res.values()} == {'reused'}
    for name, r in res.items():
        assert r.manifest == done[name].manifest, name
    copied = tmp_path / 'second' / 'cams' / 'manifest.json'
    assert copied.stat().st_ino == (first / 'cams' / 'manifest.json').stat().st_ino, \
        'same file system: hard-linked, not copied'
    assert not list((tmp_path / 'second').glob('*.reusing'))
    assert {p: p.stat().st_mtime_ns for p in first.rglob('*') if p.is_file()} == before
    # the copy is a finished work dir of its own: the next run skips every stage
    again = run(cfg, tmp_path / 'second')
    assert {r.status for r in again.values()} == {'skipped'}


def test_a_changed_stage_and_what_follows_run_the_rest_is_reused(source, tmp_path):
    cfg, first, _ = source
    cfg['stages'][2]['refiners'] = [dict(type='BackgroundThreshold', threshold=0.6)]
    res = run(cfg, tmp_path / 'second', reuse_from=[tmp_path / 'nowhere', first])
    assert [res[n].status for n in ('classify', 'cams')] == ['reused', 'reused']
    assert [res[n].status for n in ('labels', 'eval_labels')] == ['ran', 'ran']
    assert read_manifest(first / 'labels')['config_hash'] != res['labels'].manifest['config_hash']


def test_a_stage_whose_files_fail_their_checksums_is_not_copied(source, tmp_path, monkeypatch):
    from wsss_core.pipeline import checksums
    monkeypatch.setattr(checksums, '_VERIFIED', set())   # as in a new wsss-run process
    cfg, first, _ = source
    victim = sorted((first / 'cams' / 'cams').glob('*.npz'))[0]
    victim.write_bytes(victim.read_bytes()[:-7] + b'garbage')
    with pytest.raises(CorruptArtifactError, match=victim.name):
        run(cfg, tmp_path / 'second', reuse_from=[first])
    assert not (tmp_path / 'second' / 'cams').exists()
    assert read_manifest(tmp_path / 'second' / 'classify')['config_hash'] == \
        read_manifest(first / 'classify')['config_hash']


def test_the_work_dir_itself_is_not_a_source_and_stale_files_move_aside(source, tmp_path):
    cfg, first, _ = source
    assert Pipeline(Config(cfg), first, reuse_from=[first]).reuse_from == []
    second = tmp_path / 'second'
    (second / 'cams').mkdir(parents=True)
    (second / 'cams' / 'half_written.npz').write_bytes(b'x')
    res = run(cfg, second, reuse_from=[first])
    assert res['cams'].status == 'reused'
    assert (second / '.superseded' / 'cams' / 'half_written.npz').is_file()
    assert not (second / 'cams' / 'half_written.npz').exists()


def test_wsss_run_refuses_a_reuse_dir_that_does_not_exist(tmp_path, capsys):
    from wsss_core.cli import main
    code = main(['quickstart', '--work-dir', str(tmp_path / 'w'),
                 '--reuse-from', str(tmp_path / 'missing')])
    assert code == 2
    assert 'no such work dir' in capsys.readouterr().err
    assert not (tmp_path / 'w').exists()

