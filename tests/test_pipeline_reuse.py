"""``--reuse-from``: stages finished in another work dir with the same config hash are copied,
not run (wsss_core.pipeline.reuse)."""
from __future__ import annotations

import pytest
from mmengine.config import Config

from wsss_core.pipeline import Pipeline, read_manifest
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
    assert not (tmp_path / 'second' / '.reusing').exists()
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


def test_a_corrupt_source_is_passed_over_for_the_next_one_or_the_stage_runs(
        source, tmp_path, monkeypatch, caplog):
    from wsss_core.pipeline import checksums
    monkeypatch.setattr(checksums, '_VERIFIED', set())   # as in a new wsss-run process
    cfg, first, _ = source
    victim = sorted((first / 'cams' / 'cams').glob('*.npz'))[0]
    intact = victim.read_bytes()
    victim.write_bytes(intact[:-7] + b'garbage')
    res = run(cfg, tmp_path / 'second', reuse_from=[first])
    assert res['classify'].status == 'reused'
    assert res['cams'].status == 'ran', 'a corrupt copy is not reused: the stage runs'
    assert f'not reused from {first / "cams"}' in caplog.text and victim.name in caplog.text
    assert not (tmp_path / 'second' / '.reusing' / 'cams').exists()
    # with an intact copy in a later source, that one is taken instead
    monkeypatch.setattr(checksums, '_VERIFIED', set())
    third = tmp_path / 'third'
    run(cfg, third, reuse_from=[tmp_path / 'second'])
    res = run(cfg, tmp_path / 'fourth', reuse_from=[first, third])
    assert res['cams'].status == 'reused'
    assert (tmp_path / 'fourth' / 'cams' / 'cams' / victim.name).read_bytes() != \
        victim.read_bytes()


def test_files_are_copied_where_hard_links_fail(source, tmp_path, monkeypatch):
    import os
    cfg, first, _ = source

    def no_links(src, dst):
        raise OSError('cross-device link')
    monkeypatch.setattr(os, 'link', no_links)
    res = run(cfg, tmp_path / 'second', reuse_from=[first])
    assert {r.status for r in res.values()} == {'reused'}
    copied = tmp_path / 'second' / 'cams' / 'manifest.json'
    assert copied.stat().st_ino != (first / 'cams' / 'manifest.json').stat().st_ino
    assert copied.read_bytes() == (first / 'cams' / 'manifest.json').read_bytes()


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
    # the option takes every word up to the next one: a config after it gets a hint
    assert main(['--reuse-from', str(tmp_path), 'core::quickstart.py']) == 2
    assert 'put CONFIG before it' in capsys.readouterr().err


def test_wsss_run_refuses_a_reuse_dir_that_is_not_a_work_dir(tmp_path, capsys):
    from wsss_core.cli import main
    runs = tmp_path / 'runs'
    (runs / 'a').mkdir(parents=True)
    (runs / 'a' / 'config.py').write_text('seed = 0\n')          # a work dir: its config
    (runs / 'b' / 'cams').mkdir(parents=True)
    (runs / 'b' / 'cams' / 'manifest.json').write_text('{}')     # or a stage's manifest
    (runs / 'd' / 'classify').mkdir(parents=True)
    (runs / 'd' / 'classify' / 'state.json').write_text('{}')    # or a stage that began
    (runs / 'c').mkdir()                                         # neither
    code = main(['quickstart', '--work-dir', str(tmp_path / 'w'), '--reuse-from', str(runs)])
    err = capsys.readouterr().err
    assert code == 2 and 'not a work dir' in err
    assert f'the work dirs in it: {runs / "a"}, {runs / "b"}, {runs / "d"})' in err
    assert not (tmp_path / 'w').exists()


def test_the_stage_dir_here_is_moved_aside_only_when_a_source_has_the_stage(source, tmp_path):
    from wsss_core.pipeline.reuse import reuse_finished_stage
    _, first, done = source
    digest = done['cams'].manifest['config_hash']
    calls = []
    target = tmp_path / 'second' / 'cams'
    target.parent.mkdir()
    assert reuse_finished_stage('cams', 'another-hash', [first], target,
                                make_room=lambda: calls.append(1)) is None
    assert calls == [], 'no source finished with that hash: nothing here is touched'
    got = reuse_finished_stage('cams', digest, [tmp_path / 'nowhere', first, first], target,
                               make_room=lambda: calls.append(1))
    assert got == first / 'cams' and calls == [1]
    assert read_manifest(target)['config_hash'] == digest
