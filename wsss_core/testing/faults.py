"""Fault injection for reliability tests: a SIGKILL at a chosen point of a stage, a full disk.

**Kill points.**  :class:`KillPoint` names where a run dies, counted inside the stage
``stage`` of the process that runs it:

* ``kind='write'``: the ``index``-th atomic write (1-based) of a file matching one of
  ``patterns`` (globs relative to the stage dir, e.g. ``'cams/*.npz'``, ``'epoch_*.pth'``);
  ``phase='before'`` dies before the file's temporary copy is created (``index - 1`` such
  files complete), ``phase='mid'`` after its bytes are in the temporary file, before the
  rename (the file is not there, its ``.tmp`` is);
* ``kind='iteration'``: before the ``index``-th training iteration (1-based) this process
  runs in the stage (mid-epoch when it is not the first of an epoch);
* ``kind='epoch'``: right after the ``index``-th epoch this process trains in the stage
  ended (its checkpoint written), before the next one starts.

The process kills itself with SIGKILL there: no handler, ``finally`` or ``atexit`` runs, as
when a machine is lost.  :func:`run_killed` starts a run of ``wsss-run`` that way, either
as a fresh interpreter (``python -m wsss_core.testing.faults --kill ... -- ARGS``, exactly
``python -m wsss_core.cli ARGS`` plus the kill point) or, to save the interpreter start,
as a ``fork`` of the calling process that calls the same ``wsss_core.cli.main(ARGS)``.

**Trace.**  With ``trace=FILE`` each process appends JSON lines of what it did: the
training iterations it ran (``runner.iter`` before the step) and the artifact writes it
began, per stage; the tests read them to show that a resumed run redid no completed work.

**Disk full.**  :func:`disk_full` makes the ``n``-th atomic write under a folder fail the
way a full disk does (half its bytes written, then ``OSError(ENOSPC)``).

Hooks go in at module level (``wsss_core.io._open_temp`` and the mmengine train loops);
none of them changes what a run computes.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import fnmatch
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

__all__ = ['KillPoint', 'install', 'run_killed', 'read_trace', 'disk_full', 'snapshot',
           'temp_files']

KINDS = ('write', 'iteration', 'epoch')
PHASES = ('before', 'mid')


@dataclasses.dataclass(frozen=True)
class KillPoint:
    """Where a run dies (see the module docstring)."""
    stage: str
    kind: str
    index: int
    phase: str = 'before'
    patterns: Tuple[str, ...] = ()

    def __post_init__(self):
        if self.kind not in KINDS or self.phase not in PHASES or self.index < 1:
            raise ValueError(f'bad kill point {self}: kind in {KINDS}, phase in {PHASES}, '
                             'index >= 1')
        if self.kind == 'write' and not self.patterns:
            raise ValueError(f'kill point {self}: a write kill needs file patterns')

    def to_arg(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_arg(cls, text: str) -> 'KillPoint':
        data = json.loads(text)
        data['patterns'] = tuple(data.get('patterns') or ())
        return cls(**data)

    def describe(self) -> str:
        if self.kind == 'write':
            return f'{self.stage}: {self.phase} write #{self.index} of {"|".join(self.patterns)}'
        if self.kind == 'iteration':
            return f'{self.stage}: before training iteration #{self.index}'
        return f'{self.stage}: after epoch #{self.index} (checkpoint written)'


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class _Injector:
    """The counters and the trace of one process."""

    def __init__(self, point: Optional[KillPoint], trace: Optional[str]):
        self.point = point
        self.trace = trace
        self.count = 0   # events of the kill point's kind in its stage so far

    def record(self, **event) -> None:
        if self.trace:
            with open(self.trace, 'a') as fh:
                fh.write(json.dumps(dict(event, pid=os.getpid())) + '\n')

    def due(self, stage: str, kind: str, rel: str = '') -> bool:
        """Count an event (of ``kind`` in ``stage``, on file ``rel`` for writes) if the kill
        point counts it; True when it is the kill point's ``index``-th."""
        p = self.point
        if p is None or p.stage != stage or p.kind != kind:
            return False
        if kind == 'write' and not any(fnmatch.fnmatch(rel, pat) for pat in p.patterns):
            return False
        self.count += 1
        return self.count == p.index

    # ------------------------------------------------------------------ writes
    def stage_file(self, path: Path) -> Optional[Tuple[str, str]]:
        """``(stage, path relative to the stage dir)`` of a file under ``work_dir/<stage>/``."""
        for parent in Path(path).parents:
            if (parent / 'state.json').is_file():
                return parent.name, Path(path).relative_to(parent).as_posix()
        return None

    def wrap_open_temp(self, open_temp):
        def open_temp_with_faults(path, mode):
            where = self.stage_file(path)
            if where is None:
                return open_temp(path, mode)
            stage, rel = where
            self.record(event='write', stage=stage, file=rel)
            due = self.due(stage, 'write', rel)
            if due and self.point.phase == 'before':
                _die()
            tmp, fh = open_temp(path, mode)
            if due:   # phase 'mid': die once the bytes are in the temporary file
                return tmp, _DieAfterFlush(fh)
            return tmp, fh
        return open_temp_with_faults

    # ------------------------------------------------------------------ training
    def wrap_run_iter(self, run_iter):
        injector = self

        def run_iter_with_faults(loop, *args, **kwargs):
            stage = Path(loop.runner.work_dir).name
            if injector.due(stage, 'iteration'):
                _die()
            injector.record(event='iteration', stage=stage, iter=int(loop.runner.iter),
                            epoch=int(loop.runner.epoch))
            return run_iter(loop, *args, **kwargs)
        return run_iter_with_faults

    def wrap_run_epoch(self, run_epoch):
        injector = self

        def run_epoch_with_faults(loop, *args, **kwargs):
            out = run_epoch(loop, *args, **kwargs)
            stage = Path(loop.runner.work_dir).name
            if injector.due(stage, 'epoch'):
                _die()
            return out
        return run_epoch_with_faults


class _FileProxy:
    """Wraps an open file: everything goes to it but what a subclass overrides."""

    def __init__(self, fh):
        self._fh = fh

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._fh.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._fh, name)


class _DieAfterFlush(_FileProxy):
    """A file whose ``flush`` (atomic_write's, after the data) is followed by a SIGKILL."""

    def flush(self):
        self._fh.flush()
        os.fsync(self._fh.fileno())
        _die()


def install(point: Optional[KillPoint] = None, trace: Optional[str] = None, setattr=setattr):
    """Put the kill point and the trace into this process (``setattr`` may be
    ``monkeypatch.setattr`` to undo it after a test)."""
    import mmengine.runner.loops as loops

    import wsss_core.io as io
    injector = _Injector(point, trace)
    setattr(io, '_open_temp', injector.wrap_open_temp(io._open_temp))
    for cls in (loops.EpochBasedTrainLoop, loops.IterBasedTrainLoop):
        setattr(cls, 'run_iter', injector.wrap_run_iter(cls.run_iter))
    setattr(loops.EpochBasedTrainLoop, 'run_epoch',
            injector.wrap_run_epoch(loops.EpochBasedTrainLoop.run_epoch))
    return injector


def read_trace(path) -> List[dict]:
    """The events of a trace file (``[]`` when no process wrote one)."""
    try:
        with open(path) as fh:
            return [json.loads(line) for line in fh if line.strip()]
    except FileNotFoundError:
        return []


# ----------------------------------------------------------------------------- running
def _child(cli_args: Sequence[str], point: Optional[KillPoint], trace: Optional[str],
           log: Optional[str]) -> None:
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    install(point, trace)
    from wsss_core.cli import main
    code = main(list(cli_args))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_killed(cli_args: Sequence[str], point: Optional[KillPoint], trace: Optional[str] = None,
               fork: bool = True, timeout: float = 300, log: Optional[str] = None) -> int:
    """Run ``wsss-run cli_args`` with ``point`` installed; return its exit status
    (``-signal.SIGKILL`` when it died at the kill point).

    ``fork=True`` forks this process (no interpreter start; torch should run one thread
    here) when it has no other Python thread (one could hold a lock the child then waits
    on forever); otherwise, and with ``fork=False``, it starts
    ``python -m wsss_core.testing.faults``.  ``log``: a file that gets the run's output.
    """
    import threading
    trace = str(trace) if trace else None
    if fork:
        _stop_tqdm_monitor()
    if not fork or threading.active_count() > 1:
        cmd = [sys.executable, '-m', 'wsss_core.testing.faults']
        if point is not None:
            cmd += ['--kill', point.to_arg()]
        if trace:
            cmd += ['--trace', trace]
        env = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1')
        with open(log or os.devnull, 'a') as out:
            proc = subprocess.run(cmd + ['--', *cli_args], env=env, stdout=out,
                                  stderr=subprocess.STDOUT, timeout=timeout)
        return proc.returncode
    import multiprocessing
    sys.stdout.flush()
    sys.stderr.flush()
    proc = multiprocessing.get_context('fork').Process(
        target=_child, args=(list(cli_args), point, trace, str(log) if log else os.devnull))
    proc.start()
    proc.join(timeout)
    if proc.exitcode is None:
        proc.kill()
        proc.join()
        raise TimeoutError(f'wsss-run {" ".join(cli_args)} ran over {timeout} s')
    return proc.exitcode


def _stop_tqdm_monitor() -> None:
    """Stop tqdm's monitor thread (tqdm starts it again with the next progress bar)."""
    tqdm = getattr(sys.modules.get('tqdm'), 'tqdm', None)
    monitor = getattr(tqdm, 'monitor', None)
    if monitor is not None:
        monitor.exit()
        tqdm.monitor = None


# ----------------------------------------------------------------------------- disk full
@contextlib.contextmanager
def disk_full(folder, nth: int, setattr=None) -> Iterator[dict]:
    """Within the block, the ``nth`` (1-based) atomic write of a file under ``folder`` writes
    half its bytes, then fails with ``OSError(ENOSPC)`` as a full disk does; the yielded
    dict gets ``'path'``, the file that failed.  ``setattr``: e.g. ``monkeypatch.setattr``."""
    import wsss_core.io as io
    folder = Path(folder).resolve()
    real = io._open_temp
    state = dict(count=0, path=None)

    def open_temp_on_a_full_disk(path, mode):
        tmp, fh = real(path, mode)
        if Path(path).resolve().parent.is_relative_to(folder):
            state['count'] += 1
            if state['count'] == nth:
                state['path'] = str(path)
                return tmp, _FullDiskFile(fh)
        return tmp, fh

    if setattr is not None:
        setattr(io, '_open_temp', open_temp_on_a_full_disk)
        yield state
        return
    io._open_temp = open_temp_on_a_full_disk
    try:
        yield state
    finally:
        io._open_temp = real


class _FullDiskFile(_FileProxy):
    """Writes the first half of the first chunk it gets, then ENOSPC on every write."""

    def write(self, data):
        self._fh.write(data[:len(data) // 2])
        self._fh.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# ----------------------------------------------------------------------------- inspection
def snapshot(folder, patterns: Sequence[str] = ('*',)) -> Dict[str, Tuple[int, int, int]]:
    """``{relative path: (inode, mtime_ns, size)}`` of the files under ``folder`` matching
    ``patterns`` (temporary files excluded)."""
    folder = Path(folder)
    out = {}
    for path in sorted(folder.rglob('*')):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and not path.name.endswith('.tmp') and \
                any(fnmatch.fnmatch(rel, p) for p in patterns):
            st = path.stat()
            out[rel] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return out


def temp_files(folder) -> List[str]:
    """Temporary files of :func:`wsss_core.io.atomic_write` (``.*.tmp``) under ``folder``."""
    return sorted(p.relative_to(folder).as_posix() for p in Path(folder).rglob('.*.tmp'))


# ----------------------------------------------------------------------------- entry point
def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m wsss_core.testing.faults [--kill JSON] [--trace FILE] -- WSSS-RUN ARGS``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    cli_args = argv[argv.index('--') + 1:] if '--' in argv else []
    own = argv[:argv.index('--')] if '--' in argv else argv
    parser = argparse.ArgumentParser(prog='python -m wsss_core.testing.faults')
    parser.add_argument('--kill', type=KillPoint.from_arg, default=None)
    parser.add_argument('--trace', default=None)
    args = parser.parse_args(own)
    install(args.kill, args.trace)
    from wsss_core.cli import main as cli_main
    return cli_main(cli_args)


if __name__ == '__main__':
    sys.exit(main())
