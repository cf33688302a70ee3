"""PerImageStage (wsss_core.pipeline.per_image): the share of a shard (items i, i + n, ...
of the full list), resume of finished items, the in-process work, the job (inline, pooled,
streamed, on finished items too when the stage revisits them), the counts and the record."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from mmengine.config import Config

from wsss_core.pipeline.per_image import PerImageStage
from wsss_core.pipeline.sharding import is_sharded_stage
from wsss_core.pipeline.stage import Stage, StageContext, StageError


# module level: spawn workers unpickle it by name
class WriteSquare:
    """The job: writes ``job_<item>.txt`` unless it exists; returns ``(item, item**2, new,
    the process id)``."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def item_name(self, item) -> str:
        return f'number {item}'

    def __call__(self, item: int):
        path = self.folder / f'job_{item}.txt'
        new = not path.is_file()
        if new:
            path.write_text(str(item * item))
        return item, int(path.read_text()), new, os.getpid()


class Numbers(PerImageStage):
    """Items 0..count-1; the in-process work writes ``<item>.txt`` (its output) and logs."""

    def __init__(self, name='numbers', count=7, **kw):
        super().__init__(name, count=count)
        for key, value in kw.items():
            setattr(self, key, value)
        self.seen = []

    def items(self, ctx):
        return list(range(self.options['count']))

    def outputs(self, ctx, item):
        return [ctx.stage_dir / f'{item}.txt']

    def process(self, ctx, item):
        self.seen.append(item)
        (ctx.stage_dir / f'{item}.txt').write_text(str(item))
        return 10 * item

    def summarise(self, ctx, share):
        return dict(artifacts=dict(folder='.'), metrics=dict(total=sum(share.results)),
                    counts=dict(shard=share.shard.tag))


class Squares(Numbers):
    """Numbers with a job after (or overlapping) the in-process work."""

    def job(self, ctx):
        return WriteSquare(ctx.stage_dir)

    def summarise(self, ctx, share):
        self.pids = {r[3] for r in share.results}
        return dict(counts=dict(new=sum(r[2] for r in share.results)),
                    metrics=dict(total=sum(r[1] for r in share.results)))


def context(tmp_path) -> StageContext:
    (tmp_path / 'numbers').mkdir(exist_ok=True)
    return StageContext(cfg=Config(dict(data=dict(type='X'))), work_dir=tmp_path,
                        stage_dir=tmp_path / 'numbers', progress=False)


def test_a_shard_does_its_stride_of_the_full_list_minus_the_finished(tmp_path, monkeypatch):
    ctx = context(tmp_path)
    (ctx.stage_dir / '4.txt').write_text('done before')
    monkeypatch.setenv('WSSS_SHARD', '1/3')
    stage = Numbers(count=14)
    record = stage.run(ctx)
    assert stage.seen == [1, 7, 10, 13]                    # 1, 4, 7, 10, 13 without 4
    assert list(record) == ['metrics', 'counts', 'artifacts']
    assert record['metrics'] == dict(total=10 * (1 + 7 + 10 + 13))
    assert record['counts'] == dict(images=5, computed=4, reused=1, shard='1-of-3')
    assert (ctx.stage_dir / '4.txt').read_text() == 'done before'   # kept
    stage.seen = []
    assert stage.run(ctx)['counts'] == dict(images=5, computed=0, reused=5, shard='1-of-3')
    assert stage.seen == []


def test_an_unsharded_stage_does_every_item_and_counted_picks_the_counts(tmp_path,
                                                                         monkeypatch):
    ctx = context(tmp_path)
    monkeypatch.setenv('WSSS_SHARD', '0/2')
    stage = Numbers(count=3, sharded=False, counted=('images', 'computed'))
    record = stage.run(ctx)
    assert stage.seen == [0, 1, 2]
    assert record['counts'] == dict(images=3, computed=3, shard='0-of-1')


def test_the_job_runs_on_the_to_do_items_after_the_in_process_work(tmp_path):
    ctx = context(tmp_path)
    (ctx.stage_dir / '1.txt').write_text('1')
    stage = Squares(count=4)
    record = stage.run(ctx)
    assert stage.seen == [0, 2, 3]
    assert sorted(p.name for p in ctx.stage_dir.glob('job_*')) == \
        ['job_0.txt', 'job_2.txt', 'job_3.txt']
    assert record['metrics'] == dict(total=0 + 4 + 9)
    assert record['counts'] == dict(images=4, computed=3, reused=1, new=3)


def test_revisited_finished_items_come_back_in_order_from_a_pool(tmp_path):
    ctx = context(tmp_path)
    for item in (1, 2):                       # finished by an earlier run, job files included
        (ctx.stage_dir / f'{item}.txt').write_text(str(item))
        (ctx.stage_dir / f'job_{item}.txt').write_text(str(item * item))
    stage = Squares(count=5, revisit_finished=True, workers=2)
    record = stage.run(ctx)
    assert stage.seen == [0, 3, 4]
    assert record['metrics'] == dict(total=0 + 1 + 4 + 9 + 16)   # every item of the share
    assert record['counts'] == dict(images=5, computed=3, reused=2, new=3)
    assert os.getpid() not in stage.pids


def test_streamed_job_overlaps_and_gives_what_the_two_passes_give(tmp_path):
    one, two = tmp_path / 'one', tmp_path / 'two'
    for folder, streamed in ((one, 0), (two, 1)):
        folder.mkdir()
        ctx = context(folder)
        (ctx.stage_dir / '2.txt').write_text('2')
        (ctx.stage_dir / 'job_2.txt').write_text('4')
        stage = Squares(count=4, revisit_finished=True, stream_workers=streamed)
        record = stage.run(ctx)
        assert stage.seen == [0, 1, 3]
        assert record['metrics'] == dict(total=0 + 1 + 4 + 9)
        assert record['counts'] == dict(images=4, computed=3, reused=1, new=3)
        assert (os.getpid() in stage.pids) == (not streamed)
    assert sorted(p.name for p in (one / 'numbers').iterdir()) == \
        sorted(p.name for p in (two / 'numbers').iterdir())


def test_only_a_per_image_stage_shards():
    class OldStyle(Stage):
        sharded = True   # the contract before PerImageStage: run() split the images itself

    assert is_sharded_stage(Numbers()) and not is_sharded_stage(Numbers(sharded=False))
    assert not is_sharded_stage(Stage('plain'))
    with pytest.raises(StageError, match="'old'.*sharded = True but is not a PerImageStage"):
        is_sharded_stage(OldStyle('old'))
