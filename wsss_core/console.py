"""What ``wsss-run`` shows on the terminal, and the log files that keep the rest.

The console shows, per stage, one start line (naming the stage's log file), a progress bar
(iterations with loss and ETA for training, images for offline stages; none with
``--no-progress``) and one result line (headline metrics and duration), plus warnings and
errors.  Everything else a stage logs goes to its log file ``<stage dir>/stage.log`` only:
the other lines of the ``wsss`` logger, and all of mmengine's (environment dump, hook table,
per-iteration lines; see :func:`adopt_mmengine_logger`).  ``-v/--verbose`` shows everything
on the console, as before the log files existed (they are still written).

The run's log file ``<work dir>/wsss-run.log`` (:func:`attach_run_log`) keeps every line of
the ``wsss`` logger of every run in that work dir, and the traceback of a failure -- also of
a crash that no Python code survives, such as a segmentation fault in a native library
(:func:`record_crashes`).

Rules for a log record on the console (:class:`ConsoleFilter`): shown with ``verbose``, at
WARNING or above, when logged with ``extra=CONSOLE``, or when no stage log is open; never when
logged with ``extra=FILE_ONLY``.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

__all__ = ['CONSOLE', 'FILE_ONLY', 'RUN_LOG', 'STAGE_LOG', 'configure', 'verbose',
           'progress_enabled', 'ConsoleFilter', 'setup_console', 'attach_run_log',
           'record_crashes',
           'stage_log', 'stage_log_name', 'current_stage_log', 'adopt_mmengine_logger',
           'result_line', 'reset']

CONSOLE = {'console': True}       # logger.info(..., extra=CONSOLE): always on the console
FILE_ONLY = {'file_only': True}   # logger.error(..., extra=FILE_ONLY): log files only
RUN_LOG = 'wsss-run.log'
STAGE_LOG = 'stage.log'
_FORMAT = '%(asctime)s %(levelname)s %(message)s'
_FILE_FORMAT = '%(asctime)s %(name)s %(levelname)s %(message)s'


@dataclass
class _Settings:
    progress: bool = True
    verbose: bool = False


_settings = _Settings()
_stage_logs: List['_StageLog'] = []   # open stage logs, innermost last


@dataclass
class _StageLog:
    path: Path
    handler: logging.Handler
    progress: bool


def configure(progress: bool = True, verbose: bool = False) -> None:
    """Set the run's console options (``--no-progress``, ``-v``)."""
    _settings.progress = bool(progress)
    _settings.verbose = bool(verbose)


def verbose() -> bool:
    """Whether the console shows everything (``-v``)."""
    return _settings.verbose


def progress_enabled() -> bool:
    """Whether progress bars are shown: not ``--no-progress`` and, inside a stage, the
    stage's ``progress`` flag (a Pipeline built with ``progress=False``)."""
    return _settings.progress and all(s.progress for s in _stage_logs)


def current_stage_log() -> Optional[Path]:
    """The log file of the stage running now (None between stages)."""
    return _stage_logs[-1].path if _stage_logs else None


class ConsoleFilter(logging.Filter):
    """The console's rule for a record (see the module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, 'file_only', False):
            return False
        if _settings.verbose or record.levelno >= logging.WARNING:
            return True
        return bool(getattr(record, 'console', False)) or not _stage_logs


class CurrentStderrHandler(logging.StreamHandler):
    """A :class:`logging.StreamHandler` on whatever ``sys.stderr`` is when a record is
    emitted, not the stream of the moment it was made: a process that redirects or replaces
    stderr after set-up (pytest does, per test) still gets the line, never a closed stream."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup_console(verbose_: bool = False, progress: bool = True) -> logging.Handler:
    """The console handler on the root logger (stderr, INFO, :class:`ConsoleFilter`) and the
    console options; replaces an earlier one of ours."""
    configure(progress=progress, verbose=verbose_)
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, '_wsss_console', False):
            root.removeHandler(h)
    handler = CurrentStderrHandler()
    handler.setFormatter(logging.Formatter(_FORMAT, datefmt='%H:%M:%S'))
    handler.addFilter(ConsoleFilter())
    handler._wsss_console = True
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


def reset() -> None:
    """Back to the defaults (progress bars, not verbose) without our console handler and
    run-log handlers: for a process that ran ``wsss-run``'s ``main`` and goes on (tests)."""
    configure()
    root, wsss = logging.getLogger(), logging.getLogger('wsss')
    for h in list(root.handlers):
        if getattr(h, '_wsss_console', False):
            root.removeHandler(h)
    for h in list(wsss.handlers):
        if getattr(h, '_wsss_run_log', None):
            wsss.removeHandler(h)
            h.close()


def _file_handler(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode='a', encoding='utf-8')
    handler.setFormatter(logging.Formatter(_FILE_FORMAT, datefmt='%Y-%m-%d %H:%M:%S'))
    handler.setLevel(logging.DEBUG)
    return handler


def attach_run_log(work_dir) -> Path:
    """Append the ``wsss`` logger's records to ``<work_dir>/wsss-run.log`` (one handler per
    process and path); return the path."""
    path = Path(work_dir) / RUN_LOG
    logger = logging.getLogger('wsss')
    for h in logger.handlers:
        if getattr(h, '_wsss_run_log', None) == str(path.resolve()):
            return path
    handler = _file_handler(path)
    handler._wsss_run_log = str(path.resolve())
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    return path


#: the open run log a fatal signal's traceback goes to (faulthandler keeps its descriptor)
_CRASH_LOG = None


def record_crashes(work_dir) -> Path:
    """Have a fatal signal (SIGSEGV, SIGFPE, SIGABRT, SIGBUS, SIGILL: e.g. a segmentation
    fault inside torch) write the Python traceback of every thread to
    ``<work_dir>/wsss-run.log`` (:mod:`faulthandler`), where nothing else could record it.
    The file stays open for the life of the process; a later call for another work dir
    moves the record there."""
    global _CRASH_LOG
    import faulthandler
    path = Path(work_dir) / RUN_LOG
    if _CRASH_LOG is not None and _CRASH_LOG.name == str(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    log = open(path, 'a', encoding='utf-8')   # noqa: SIM115 - kept open on purpose
    faulthandler.enable(file=log, all_threads=True)
    old, _CRASH_LOG = _CRASH_LOG, log
    if old is not None:
        old.close()
    return path


def stage_log_name() -> str:
    """``stage.log`` in the main process; ``stage.rank<r>.log`` for another rank of a
    torch.distributed run and ``stage.shard-<i>-of-<n>.log`` for a ``WSSS_SHARD`` process,
    so that processes working on one stage never write into one file."""
    from .pipeline.sharding import current_shard
    shard = current_shard()
    if shard.independent:
        return f'stage.shard-{shard.tag}.log'
    rank = _rank()
    return STAGE_LOG if rank == 0 else f'stage.rank{rank}.log'


def _rank() -> int:
    try:
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank()
    except ImportError:  # pragma: no cover
        pass
    return int(os.environ.get('RANK', 0) or 0)


@contextlib.contextmanager
def stage_log(path, progress: bool = True):
    """While the block runs: the records of the ``wsss`` logger (from INFO), of the other
    loggers that reach the root logger, and mmengine's go (also) to the file ``path``; the
    console shows only what :class:`ConsoleFilter` lets through, and ``progress`` (False: no
    progress bars) applies."""
    from . import compat
    compat.route_mmengine_logs()
    path = Path(path)
    handler = _file_handler(path)
    root, logger = logging.getLogger(), logging.getLogger('wsss')
    root.addHandler(handler)    # the wsss lines and those of the libraries a stage uses
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    entry = _StageLog(path, handler, bool(progress))
    _stage_logs.append(entry)
    try:
        yield path
    finally:
        _stage_logs.remove(entry)
        root.removeHandler(handler)
        handler.close()


# ----------------------------------------------------------------------------- mmengine
class MMEngineConsoleGate(logging.Filter):
    """On an mmengine logger's console handler: while a stage log is open (and not
    ``verbose``), only errors reach the console; the rest is in the stage log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _settings.verbose or not _stage_logs or record.levelno >= logging.ERROR


class StageLogRelay(logging.Handler):
    """On an mmengine logger: hand each record to the open stage log, if any."""

    def emit(self, record: logging.LogRecord) -> None:
        if _stage_logs:
            _stage_logs[-1].handler.handle(record)


def adopt_mmengine_logger(logger: logging.Logger) -> None:
    """Gate ``logger``'s console handlers (:class:`MMEngineConsoleGate`) and relay its records
    to the open stage log (:class:`StageLogRelay`, with the console handler's own filters:
    mmengine's filter of repeated warnings); idempotent."""
    consoles = [h for h in logger.handlers if isinstance(h, logging.StreamHandler)
                and not isinstance(h, (logging.FileHandler, StageLogRelay))]
    for h in consoles:
        if not any(isinstance(f, MMEngineConsoleGate) for f in h.filters):
            h.addFilter(MMEngineConsoleGate())
    if not any(isinstance(h, StageLogRelay) for h in logger.handlers):
        relay = StageLogRelay()
        relay.setLevel(logging.INFO)
        for f in (consoles[0].filters if consoles else []):
            if isinstance(f, logging.Filter) and not isinstance(f, MMEngineConsoleGate):
                try:   # a fresh one: a shared one would have seen the console's records
                    relay.addFilter(type(f)(f.name))
                except TypeError:
                    pass
        logger.handlers.append(relay)


# ----------------------------------------------------------------------------- lines
def result_line(name: str, stage, record: dict) -> str:
    """``[name] done in 12.3 s: <headline metric> 0.6512, ...`` (the stage's headline metrics,
    as in the end-of-run table)."""
    from types import SimpleNamespace

    from .pipeline.summary import summary_rows
    rows = summary_rows([SimpleNamespace(name=name, status='ran', manifest=record,
                                         stage=stage)])
    metrics = ', '.join(f'{label} {value:.4f}' for _, _, label, value in rows)
    line = f'[{name}] done in {float(record.get("duration_s", 0.0)):.1f} s'
    return f'{line}: {metrics}' if metrics else line
