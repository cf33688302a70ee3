"""Run the ordered stages of a config: hash, skip when done, resume, move stale work aside.

Rules (for each stage, in config order):

* its config hash covers its options, the data config and the hashes of the stages it reads,
  so changing a stage re-runs everything downstream of it;
* finished with the same hash -> skipped (its manifest metrics still go into the summary),
  once its files match the checksums in its manifest: a missing or changed file stops the
  run with an error naming it (:mod:`~wsss_core.pipeline.checksums`); so do the files of
  the stages a stage reads, checked before its own directory is prepared;
* not finished here but finished with the same hash under the same name in a ``reuse_from``
  work dir (``wsss-run --reuse-from``) -> a copy of that stage dir is put in place, its files
  checked first (:mod:`~wsss_core.pipeline.reuse`), and the stage counts as ``reused``;
* interrupted with the same hash -> offline stages resume (per-image artifacts are written
  atomically, so every file present is complete); training stages resume from their last
  checkpoint with ``--resume`` and otherwise start afresh;
* anything else in the stage directory (another hash, an explicit redo through
  ``--stages``, a fresh start) is moved to ``work_dir/.superseded/<stage>`` first, never
  deleted, and the previous superseded copy of that stage is dropped.

One run at a time per work dir: the main process holds an exclusive lock on
``work_dir/.lock`` while it runs (released by the OS if the process dies), and a second run
stops at once with an error instead of writing into the same files.

Sharded offline stages (built on :class:`~wsss_core.pipeline.per_image.PerImageStage`, with
``sharded = True``, see :mod:`~wsss_core.pipeline.sharding`) split their images across
processes: under torchrun every rank does its share, the main process merges the ranks'
records (counts summed, then the stage's ``merge_shards``) into the one manifest; a
``WSSS_SHARD=i/n`` process does its share of the first unfinished stage, writes
``<stage>/shards/<i>-of-<n>.json`` and stops, and the shard that completes the set writes
the manifest.  In a torchrun run the main process alone decides skip / resume / fresh start
and prepares the stage dir, then tells the other ranks.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

from .. import console
from ..config_errors import StageKey, check_options, check_values, config_key
from ..config_stages import StageOrderError, stage_configs
from ..io import atomic_write, write_json
from ..registry import DATASETS, STAGES, build
from .artifacts import check_graph
from .checksums import verify_stage
from .manifest import (DamagedManifestError, config_hash, read_manifest, read_state,
                       write_manifest, write_state)
from .memory import PeakMemory
from .reuse import reuse_finished_stage
from .sharding import (SHARD_ENV, SHARDS_DIR, current_shard, is_sharded_stage,
                       read_shard_records, shard_lock, shard_record_path, sum_counts)
from .stage import Stage, StageContext, StageError

logger = logging.getLogger('wsss')


@dataclass
class StageResult:
    name: str
    status: str            # 'ran', 'resumed', 'skipped', 'reused', 'not selected'
    manifest: Optional[dict]
    stage: Stage


class Pipeline:
    """Build the stages of ``cfg.stages`` and run them in ``work_dir``.

    Args:
        cfg: merged mmengine Config with ``stages`` (a dict ``{name: stage}`` or a list of
            stage dicts, see :mod:`wsss_core.config_stages`) and ``data``.
        work_dir: where each stage gets ``<work_dir>/<name>/``.
        only: run just these stage names (each is redone even if finished); the others must
            have finished already when a selected stage reads them.
        resume: let interrupted training stages continue from their last checkpoint.
        reuse_from: other work dirs: a stage not finished here that finished in one of them
            with the same config hash is copied from there instead of run (status
            ``reused``, :mod:`~wsss_core.pipeline.reuse`).
    """

    def __init__(self, cfg, work_dir, only: Optional[Sequence[str]] = None, resume: bool = False,
                 launcher: str = 'none', device: Optional[str] = None, progress: bool = True,
                 reuse_from: Sequence = ()):
        self.cfg = cfg
        self.work_dir = Path(work_dir)
        self.resume = resume
        self.reuse_from = [Path(p) for p in reuse_from
                           if Path(p).resolve() != self.work_dir.resolve()]
        self.launcher = launcher
        self.device = device or _default_device()
        self.progress = progress
        #: the stage running now (None between stages): names the stage in a failure
        self.current_stage: Optional[str] = None
        stage_list = _stage_list(cfg.get('stages'))
        self.stages = self._build_stages(stage_list)
        if cfg.get('data') is not None:
            # an option the dataset does not take, or a value it refuses: now, not later
            data = _plain(cfg.get('data'))
            check_options(data, DATASETS, 'data')
            check_values(data, DATASETS, 'data')
        #: stage name -> (index in the run order, its dict): names the config key in build errors
        self.stage_cfgs = {s.name: (i, _plain(c)) for i, (s, c) in
                           enumerate(zip(self.stages, stage_list))}
        names = [s.name for s in self.stages]
        self.only = None if not only else list(only)
        unknown = [n for n in (self.only or []) if n not in names]
        if unknown:
            from ..config_stages import did_you_mean
            close = ' '.join(filter(None, (did_you_mean(n, names, n=1) for n in unknown)))
            hint = f' ({close})' if close else ''
            raise StageError(f'--stages names unknown stage(s) {unknown}{hint}; this config '
                             f'has {names}')

    @staticmethod
    def _build_stages(stage_cfgs) -> List[Stage]:
        """The stages of ``stage_cfgs`` (a ``stages`` dict or list, see
        :mod:`wsss_core.config_stages`) in run order, each reading only earlier ones."""
        stage_cfgs = _stage_list(stage_cfgs)
        if not stage_cfgs:
            raise StageError("the config defines no 'stages'")
        stages, seen = [], set()
        for i, scfg in enumerate(stage_cfgs):
            scfg = scfg.to_dict() if hasattr(scfg, 'to_dict') else dict(scfg)
            if 'name' not in scfg:
                raise StageError(f"stage #{i} ({scfg.get('type')}) has no 'name'")
            with config_key('stages', StageKey(i, scfg['name']), cfg=scfg, fallback=True):
                stage = build(scfg, STAGES)
                is_sharded_stage(stage)   # refuses sharded = True outside PerImageStage
            if stage.name in seen:
                raise StageError(f"two stages are named '{stage.name}'")
            for dep in stage.inputs():
                if dep not in seen:
                    raise StageError(f"stage '{stage.name}' reads '{dep}', which is not an earlier "
                                     f'stage of this config (stages so far: {sorted(seen)})')
            seen.add(stage.name)
            stages.append(stage)
        check_graph(stages)   # every input names a stage producing the kind it reads
        return stages

    # ------------------------------------------------------------------ running
    def context(self, stage: Stage) -> StageContext:
        return StageContext(cfg=self.cfg, work_dir=self.work_dir,
                            stage_dir=self.work_dir / stage.name, resume=self.resume,
                            launcher=self.launcher, device=self.device, progress=self.progress,
                            seed=self.cfg.get('seed'), logger=logger)

    def item_scope(self) -> dict:
        """Where this run names data and weights (``'item:NAME'``): the data config and every
        stage's options as built, recipes included; what :meth:`check_items` and
        ``wsss-prepare --for`` scan."""
        return dict(data=self.cfg.get('data'), stages={s.name: s.options for s in self.stages})

    def check_items(self) -> None:
        """Stop before any stage if data or weights named ``'item:NAME'`` (in the data
        config or any stage's options, recipes included) are not installed
        (:func:`wsss_core.prepare.refs.check_config_items`)."""
        from ..prepare.refs import check_config_items
        check_config_items(self.item_scope())

    def run(self) -> List[StageResult]:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with work_dir_lock(self.work_dir):
            return self._run_all()

    def _run_all(self) -> List[StageResult]:
        self.shard = current_shard()
        self.check_items()
        hashes, results = {}, []
        for stage in self.stages:
            ctx = self.context(stage)
            upstream = {n: hashes[n] for n in stage.inputs()}
            digest = config_hash(stage.hash_payload(ctx), upstream)
            hashes[stage.name] = digest
            if self.only is not None and stage.name not in self.only:
                manifest = read_manifest(ctx.stage_dir)
                if manifest is not None:
                    hashes[stage.name] = manifest['config_hash']
                results.append(StageResult(stage.name, 'not selected', manifest, stage))
                continue
            # independent shards meet only on disk: --stages selects, it does not force a redo
            redo = self.only is not None and not self.shard.independent
            status = self._decide(stage, ctx, digest, redo)
            if status in ('skipped', 'reused'):
                results.append(StageResult(stage.name, status, read_manifest(ctx.stage_dir),
                                           stage))
                continue
            results.append(self._run_stage(stage, ctx, digest, upstream, status))
            if self.shard.independent:  # a WSSS_SHARD process does one stage (see sharding)
                break
        return results

    def _decide(self, stage: Stage, ctx: StageContext, digest: str, redo: bool) -> str:
        """'skipped', 'reused', 'resumed' or 'ran', with the stage dir prepared and its state
        written.

        Decided once: by the main process of a torch.distributed run (then broadcast), or
        under a lock by each independent shard, so that concurrent processes never move a
        stage dir aside under each other.
        """
        if self.shard.source == 'torch.distributed':
            outcome = None
            if is_main_process():
                try:
                    outcome = ('ok', self._decide_here(stage, ctx, digest, redo))
                except (StageError, DamagedManifestError) as exc:
                    outcome = ('error', str(exc))
            kind, value = _broadcast(outcome)
            if kind == 'error':
                raise StageError(value)
            return value
        if self.shard.independent:
            with shard_lock(self.work_dir / '.shards.lock'):
                return self._decide_here(stage, ctx, digest, redo)
        return self._decide_here(stage, ctx, digest, redo)

    def _decide_here(self, stage: Stage, ctx: StageContext, digest: str, redo: bool) -> str:
        try:
            manifest, damaged = read_manifest(ctx.stage_dir), False
        except DamagedManifestError:
            if not redo:   # never resume over files a damaged manifest no longer vouches for
                raise
            manifest, damaged = None, True
        if manifest is not None and manifest.get('config_hash') == digest and not redo:
            verify_stage(ctx.stage_dir, manifest, stage.name)
            logger.info(f"[{stage.name}] finished earlier with the same config: skipped")
            return 'skipped'
        if self.reuse_from and not redo and not self.shard.independent:
            if self._reuse(stage, ctx, digest):
                return 'reused'
        if self.shard.independent and not is_sharded_stage(stage):
            raise StageError(
                f"stage '{stage.name}' ({type(stage).__name__}) has not finished and does not "
                f'split into shards, but this process runs as {SHARD_ENV}='
                f'{self.shard.index}/{self.shard.count}: run it first without {SHARD_ENV} '
                '(e.g. `wsss-run CONFIG --stages ' + stage.name + '`)')
        for dep in stage.inputs():   # inputs finished and intact before anything moves aside
            ctx.manifest_of(dep)
        status = self._prepare_dir(stage, ctx, digest,
                                   force_fresh=redo and (manifest is not None or damaged))
        ctx.stage_dir.mkdir(parents=True, exist_ok=True)
        write_state(ctx.stage_dir, stage.name, digest)
        return status

    def _reuse(self, stage: Stage, ctx: StageContext, digest: str) -> bool:
        """Copy the stage from a ``reuse_from`` work dir where it finished with ``digest``
        (:func:`~wsss_core.pipeline.reuse.reuse_finished_stage`); what was in its dir here
        moves to ``.superseded`` first.  False when no source has it."""
        def make_room():
            if not ctx.stage_dir.exists():
                return
            if any(ctx.stage_dir.iterdir()):
                logger.info(f'[{stage.name}] previous files moved to '
                            f'{supersede(ctx.stage_dir)} (a finished copy is reused)')
            else:
                ctx.stage_dir.rmdir()

        source = reuse_finished_stage(stage.name, digest, self.reuse_from, ctx.stage_dir,
                                      make_room=make_room)
        if source is None:
            return False
        logger.info(f'[{stage.name}] finished in {source.parent} with the same config: reused',
                    extra=console.CONSOLE)
        return True

    def _prepare_dir(self, stage: Stage, ctx: StageContext, digest: str, force_fresh: bool) -> str:
        state = read_state(ctx.stage_dir)
        same = state is not None and state.get('config_hash') == digest
        if same and not force_fresh and (self.resume or not stage.is_training()):
            logger.info(f'[{stage.name}] resuming an interrupted run')
            return 'resumed'
        if ctx.stage_dir.exists() and any(ctx.stage_dir.iterdir()):
            kept = supersede(ctx.stage_dir)
            why = ('interrupted training, started again: --resume would have continued it'
                   if same and not force_fresh else 'config changed or redo requested')
            logger.info(f'[{stage.name}] previous files moved to {kept} ({why})')
        return 'ran'

    def interruption_advice(self) -> str:
        """What to tell the user after an interruption (Ctrl-C) during :meth:`run`: the stage
        it stopped in, that finished stages and written files are complete, and the command
        that continues (``--resume`` for a training stage with a checkpoint, which a rerun
        without it would set aside and train from the start)."""
        from .exact_resume import newest_checkpoint
        name = self.current_stage
        if name is None:
            return ('interrupted between stages; every finished stage is kept: run the same '
                    'command again to continue')
        stage = next((s for s in self.stages if s.name == name), None)
        head = (f"interrupted in stage '{name}'; the finished stages and every file written "
                'are complete')
        checkpoint = newest_checkpoint(self.work_dir / name)
        if stage is not None and stage.is_training() and checkpoint is not None:
            return (f'{head}. To continue its training from {checkpoint.name}, run the same '
                    'command again with --resume (without it the training starts again and '
                    f'its files are set aside in {self.work_dir / ".superseded" / name})')
        return f"{head}. Run the same command again: it continues with stage '{name}'"

    def _run_stage(self, stage: Stage, ctx: StageContext, digest: str, upstream: dict,
                   status: str) -> StageResult:
        """Run ``stage`` with its log file open (:func:`~wsss_core.console.stage_log`): the
        console gets its start line (naming the file) and its result line, the file the rest."""
        with console.stage_log(ctx.stage_dir / console.stage_log_name(),
                               progress=ctx.progress) as log_path:
            return self._run_logged_stage(stage, ctx, digest, upstream, status, log_path)

    def _run_logged_stage(self, stage: Stage, ctx: StageContext, digest: str, upstream: dict,
                          status: str, log_path) -> StageResult:
        main = is_main_process()
        sharded = is_sharded_stage(stage) and self.shard.split
        where = f' (shard {self.shard.index}/{self.shard.count})' if sharded else ''
        logger.info(f'[{stage.name}] {type(stage).__name__} starts{where} (log: {log_path})',
                    extra=console.CONSOLE)
        start = time.time()
        self.current_stage = stage.name
        index, stage_cfg = self.stage_cfgs.get(stage.name, (None, None))
        with PeakMemory() as peak, config_key('stages', StageKey(index, stage.name),
                                              cfg=stage_cfg, fallback=True):
            record = stage.run(ctx) or {}
        self.current_stage = None
        record = dict(record, stage=stage.name, type=type(stage).__name__, config_hash=digest,
                      inputs=upstream, duration_s=round(time.time() - start, 3),
                      peak_memory_mb=peak.record())
        if sharded and self.shard.independent:
            return self._finish_independent_shard(stage, ctx, digest, record, status)
        if sharded:  # torch.distributed: every rank's record, merged by the main process
            records = _all_gather(record)
            if main:
                record = self._merged(stage, ctx, records)
        _barrier()   # every rank's files are written before the manifest hashes them
        if main:
            write_manifest(ctx.stage_dir, record)
        _barrier()
        logger.info(console.result_line(stage.name, stage, record), extra=console.CONSOLE)
        return StageResult(stage.name, status, read_manifest(ctx.stage_dir) or record, stage)

    @staticmethod
    def _merged(stage: Stage, ctx: StageContext, records: List[dict]) -> dict:
        """One record from the shards' records: the first as the base, counts summed, the
        longest duration, then the stage's own ``merge_shards`` (e.g. metrics over all)."""
        base = {k: v for k, v in records[0].items() if k != 'shard'}
        peaks = [r.get('peak_memory_mb') or {} for r in records]
        record = dict(base, counts=sum_counts(records), shards=len(records),
                      duration_s=max(float(r.get('duration_s', 0.0)) for r in records),
                      peak_memory_mb={k: max(p[k] for p in peaks if k in p)
                                      for k in set().union(*peaks)})
        return stage.merge_shards(ctx, record)   # a PerImageStage (is_sharded_stage)

    def _finish_independent_shard(self, stage: Stage, ctx: StageContext, digest: str,
                                  record: dict, status: str) -> StageResult:
        """Write this shard's record; the shard that completes the set writes the manifest."""
        shard = self.shard
        write_json(shard_record_path(ctx.stage_dir, shard), dict(record, shard=shard.tag))
        with shard_lock(ctx.stage_dir / SHARDS_DIR / '.lock'):
            done = read_manifest(ctx.stage_dir)
            if done is not None and done.get('config_hash') == digest:  # merged by another
                return StageResult(stage.name, status, done, stage)
            records = read_shard_records(ctx.stage_dir, shard.count, digest)
            if not records:
                logger.info(f'[{stage.name}] shard {shard.index}/{shard.count} done in '
                            f'{record["duration_s"]:.1f} s; the shard that finishes last '
                            'writes the manifest', extra=console.CONSOLE)
                return StageResult(stage.name, 'shard done', None, stage)
            write_manifest(ctx.stage_dir, self._merged(stage, ctx, records))
        logger.info(f'[{stage.name}] all {shard.count} shards done: manifest written',
                    extra=console.CONSOLE)
        return StageResult(stage.name, status, read_manifest(ctx.stage_dir), stage)


class WorkDirBusyError(RuntimeError):
    """Another run holds the work dir."""


_HELD_LOCKS: set = set()


@contextlib.contextmanager
def work_dir_lock(work_dir: Path):
    """Exclusive, non-blocking ``flock`` on ``work_dir/.lock`` in the main process.

    Re-entrant within a process (the CLI holds it around the run-info dump and the run).
    A ``WSSS_SHARD=i/n`` process instead shares ``.lock`` with the other shards (a plain run
    still excludes them all) and holds ``.lock.shard-<i>-of-<n>`` exclusively (one process
    per shard).
    """
    key = os.path.realpath(work_dir)
    if not is_main_process() or key in _HELD_LOCKS:
        yield
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        yield
        return
    shard = current_shard()
    with contextlib.ExitStack() as stack:
        if shard.independent:
            _try_flock(stack, Path(work_dir) / '.lock', fcntl.LOCK_SH, work_dir, note=False)
            _try_flock(stack, Path(work_dir) / f'.lock.shard-{shard.tag}', fcntl.LOCK_EX,
                       work_dir)
        else:
            _try_flock(stack, Path(work_dir) / '.lock', fcntl.LOCK_EX, work_dir)
        _HELD_LOCKS.add(key)
        try:
            yield
        finally:
            _HELD_LOCKS.discard(key)


def _lock_note(work_dir) -> str:
    """What a lock file says about its holder: ``pid <pid> on <host> in <work dir>``."""
    return f'pid {os.getpid()} on {socket.gethostname()} in {os.path.realpath(work_dir)}'


def _free_or_held_elsewhere(fh, work_dir) -> bool:
    """Whether nobody holds the lock file ``fh`` (hard-linked into another folder) or a run
    of another work dir does (its note names that dir): then this work dir may replace its
    link by a file of its own.  False when a run of this work dir, or of unknown origin,
    holds it."""
    import fcntl
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip()
        return ' in ' in holder and not holder.endswith(f' in {os.path.realpath(work_dir)}')
    fcntl.flock(fh, fcntl.LOCK_UN)
    return True


def _open_private_lock_file(path: Path, work_dir):
    """``open(path, 'a+')``, first giving ``path`` an inode of its own when it is
    hard-linked into another folder and not held by a run of this one.

    A copy of a work dir made with hard links (``cp -al``) shares every file's inode, and
    with it the file's ``flock``: without this, a run in the copy would lock the original
    out (and the other way round) and overwrite its note.
    """
    fh = open(path, 'a+')
    if os.fstat(fh.fileno()).st_nlink > 1 and _free_or_held_elsewhere(fh, work_dir):
        fh.close()
        with atomic_write(path, 'w'):   # an empty file of its own renamed over the link
            pass
        fh = open(path, 'a+')
    return fh


def _try_flock(stack: contextlib.ExitStack, path: Path, mode: int, work_dir, note=True) -> None:
    """Take ``flock(mode)`` on ``path`` without waiting (released when ``stack`` closes);
    with ``note``, write this process into the file for the error of the next one."""
    import fcntl
    fh = stack.enter_context(_open_private_lock_file(path, work_dir))
    try:
        fcntl.flock(fh, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or 'another process'
        raise WorkDirBusyError(f'{work_dir} is in use by {holder}; wait for that run to end '
                               'or use another --work-dir') from None
    stack.callback(fcntl.flock, fh, fcntl.LOCK_UN)
    if note:
        fh.seek(0)
        fh.truncate()
        fh.write(_lock_note(work_dir) + '\n')
        fh.flush()


def supersede(stage_dir: Path) -> Path:
    """Move ``stage_dir`` to ``<work_dir>/.superseded/<name>`` (replacing an older copy)."""
    target = stage_dir.parent / '.superseded' / stage_dir.name
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(stage_dir), str(target))
    return target


def _plain(cfg) -> dict:
    return cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)


def _default_device() -> str:
    import torch
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def is_main_process() -> bool:
    import torch.distributed as dist
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _distributed() -> bool:
    import torch.distributed as dist
    return dist.is_available() and dist.is_initialized()


def _barrier() -> None:
    if _distributed():
        import torch.distributed as dist
        dist.barrier()


def _broadcast(value):
    """``value`` of the main process, in every process."""
    if not _distributed():
        return value
    import torch.distributed as dist
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _all_gather(value) -> list:
    """Every process's ``value``, in rank order (a list of one outside torch.distributed)."""
    if not _distributed():
        return [value]
    import torch.distributed as dist
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def _stage_list(stages) -> List[dict]:
    """``stages`` in either form as stage dicts in run order (a bad entry: StageError)."""
    try:
        return stage_configs(stages)
    except StageOrderError as exc:
        raise StageError(str(exc)) from exc
