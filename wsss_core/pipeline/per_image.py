"""PerImageStage: the base of the offline stages that write files item by item.

One run of such a stage (:meth:`PerImageStage.run`):

1. :meth:`~PerImageStage.setup` loads what the work needs (model, data set, input folders);
2. :meth:`~PerImageStage.items` lists the stage's items in order (by default the indices of
   the data set that ``setup`` put in ``self.dataset``);
3. a :attr:`~PerImageStage.sharded` stage keeps this process's share of them: shard ``i`` of
   ``n`` (:mod:`~wsss_core.pipeline.sharding`) takes items ``i, i + n, i + 2n, ...`` of the
   **full** list, split before step 4 so that concurrent shards never do an item twice;
4. an item whose :meth:`~PerImageStage.outputs` all exist is finished (resume): only the
   others are *to do* (by default an item writes ``<folder>/<image id><suffix>`` of
   :attr:`~PerImageStage.output_file`);
5. the work, over the to-do items in order, with a progress bar:

   * :meth:`~PerImageStage.process` (or :meth:`~PerImageStage.process_todo`, which may
     batch) in this process -- e.g. a network's inference;
   * and/or :meth:`~PerImageStage.job`, a picklable per-item callable run by ``workers``
     processes (:func:`~wsss_core.refiners.parallel.map_images`; inline for 0 or 1), after
     the in-process work; with ``stream_workers = n >= 1`` each item goes to ``n`` worker
     processes as soon as its in-process work is done, while this process works on the next
     (:class:`~wsss_core.refiners.parallel.StreamingMap`).  A stage whose figures cover
     every item (e.g. an mIoU) sets :attr:`~PerImageStage.revisit_finished`: its job then
     runs on the finished items of the share too, reading their files back;

6. the record: the counts ``images`` (items of the share), ``computed`` (to do) and ``reused``
   (finished before), as :attr:`~PerImageStage.counted` lists them, plus what
   :meth:`~PerImageStage.summarise` returns (metrics, artifacts, further counts).

The counts add up over shards; after every shard finished, the runner sums them and calls
:meth:`~PerImageStage.merge_shards` once in the main process (e.g. to evaluate over all
items from the files the shards wrote).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple

from tqdm import tqdm

from ..refiners.parallel import StreamingMap, map_images
from .sharding import Shard, current_shard
from .stage import Stage, StageContext

__all__ = ['PerImageStage', 'Share']


@dataclass
class Share:
    """What this process did in a run of a :class:`PerImageStage`.

    ``items``: its share of the stage's items, in order; ``todo``: those whose outputs were
    missing (computed now); ``results``: the job's results over ``todo`` (over ``items`` when
    the stage revisits finished items), or, for a stage without a job, what
    :meth:`~PerImageStage.process_todo` returned; ``shard``: which share it was.
    """
    items: list
    todo: list
    results: list
    shard: Shard


class PerImageStage(Stage):
    """A stage whose work is one item (image) at a time, written to files per item.

    Subclasses define :meth:`items`, :meth:`outputs`, :meth:`summarise` and the work
    (:meth:`process` / :meth:`process_todo` and/or :meth:`job`); see the module docstring.
    ``workers`` and ``stream_workers`` are plain attributes (set from options that are not
    hashed: they change no output).
    """

    #: the items are split across shards (torchrun ranks or ``WSSS_SHARD=i/n`` processes)
    sharded: bool = True
    #: the job also runs on finished items of the share (reading their files back), so that
    #: the results cover all of them
    revisit_finished: bool = False
    #: the base counts the record holds, of ``images``, ``computed``, ``reused``
    counted: Sequence[str] = ('images', 'computed', 'reused')
    #: ``(folder, suffix)``: item ``i`` writes ``<folder>/<id><suffix>`` in the stage dir, ``id``
    #: the image id of ``self.dataset.records[i]`` (the default :meth:`outputs`)
    output_file: Optional[Tuple[str, str]] = None
    #: the progress bar's label after ``[<stage name>]``
    progress_label: str = 'images'
    #: processes for :meth:`job` (0 or 1: inline)
    workers: int = 0
    #: n >= 1: the job of each item runs in n processes while this one works on the next
    stream_workers: int = 0
    #: per-item work in this process, ``process(ctx, item) -> result``; None: the stage's
    #: work is all in :meth:`job` (a subclass defines it as a method)
    process: Optional[Callable[[StageContext, Any], Any]] = None
    #: the data set of the images, loaded by :meth:`setup`; the default :meth:`items` and
    #: :meth:`outputs` read it
    dataset: Any = None

    # ------------------------------------------------------------------ extension points
    def setup(self, ctx: StageContext) -> None:
        """Load what the work needs (model, data set, input folders) onto the stage; called
        at the start of every run, before :meth:`items`."""

    def items(self, ctx: StageContext) -> Sequence:
        """The stage's items, in the order of its full list (before sharding); by default
        the indices of ``self.dataset`` (loaded by :meth:`setup`)."""
        return range(len(self.dataset))

    def outputs(self, ctx: StageContext, item) -> Sequence[Path]:
        """The files ``item`` writes; the item is finished when they all exist.  By default
        ``<stage dir>/<folder>/<id><suffix>`` of :attr:`output_file` for data set index
        ``item``."""
        folder, suffix = self.output_file
        return [Path(ctx.stage_dir) / folder / f'{self.dataset.records[item].img_id}{suffix}']

    def process_todo(self, ctx: StageContext, todo: list, bar) -> list:
        """This process's work on the to-do items, in order, advancing ``bar`` per item done:
        by default :meth:`process` on each.  A stage that batches items overrides it."""
        results = []
        for item in todo:
            results.append(self.process(ctx, item))
            bar.update()
        return results

    def job(self, ctx: StageContext) -> Optional[Callable[[Any], Any]]:
        """The per-item callable run by ``workers`` processes (picklable; it may have
        ``item_name(item)`` for error messages), or None: no such work."""
        return None

    def summarise(self, ctx: StageContext, share: Share) -> dict:
        """The record's ``metrics``, ``artifacts`` and further ``counts`` of ``share``."""
        return {}

    def merge_shards(self, ctx: StageContext, record: dict) -> dict:
        """In the main process, once every shard finished: the merged ``record`` (counts
        already summed over shards), completed; by default unchanged."""
        return record

    def progress_desc(self, phase: str) -> str:
        """The progress bar's text for ``phase``: 'process' (in this process), 'job' (the
        job after it) or 'stream' (both overlapping)."""
        return f'[{self.name}] {self.progress_label}'

    # ------------------------------------------------------------------ the run
    def run(self, ctx: StageContext) -> dict:
        self.setup(ctx)
        which = current_shard() if self.sharded else Shard()
        mine = which.take(self.items(ctx))
        finished = [self.finished(ctx, item) for item in mine]
        todo = [item for item, done in zip(mine, finished) if not done]
        results = self._work(ctx, mine, todo, finished)
        record = dict(self.summarise(ctx, Share(mine, todo, results, which)) or {})
        counts = dict(images=len(mine), computed=len(todo), reused=len(mine) - len(todo))
        counts = {k: v for k, v in counts.items() if k in self.counted}
        counts.update(record.pop('counts', None) or {})
        out = {'metrics': record.pop('metrics')} if 'metrics' in record else {}
        return dict(out, counts=counts, **record)

    def finished(self, ctx: StageContext, item) -> bool:
        """Every output of ``item`` exists (it is reused, not computed again)."""
        return all(Path(path).is_file() for path in self.outputs(ctx, item))

    def _work(self, ctx: StageContext, mine: list, todo: list, finished: List[bool]) -> list:
        job = self.job(ctx)
        if job is None:
            return self._in_process(ctx, todo)
        if self.stream_workers and self.process is not None:
            return self._streamed(ctx, job, mine, finished)
        if self.process is not None:
            self._in_process(ctx, todo)
        targets = mine if self.revisit_finished else todo
        return map_images(job, targets, workers=self.workers, desc=self.progress_desc('job'),
                          progress=ctx.progress)

    def _in_process(self, ctx: StageContext, todo: list) -> list:
        with tqdm(total=len(todo), desc=self.progress_desc('process'), unit='img',
                  disable=not ctx.progress) as bar:
            return self.process_todo(ctx, todo, bar)

    def _streamed(self, ctx: StageContext, job, mine: list, finished: List[bool]) -> list:
        """:meth:`process` here and the job in ``stream_workers`` processes, overlapping:
        each item goes to the workers once this process is done with it."""
        targets = [(item, done) for item, done in zip(mine, finished)
                   if self.revisit_finished or not done]
        name_of = getattr(job, 'item_name', None)
        with StreamingMap(job, workers=self.stream_workers, desc=self.progress_desc('stream'),
                          progress=ctx.progress, total=len(targets)) as stream:
            for item, done in targets:
                if not done:
                    self.process(ctx, item)
                stream.submit(item, name=name_of(item) if callable(name_of) else None)
            return stream.results()
