"""Generate a cached data set once, safely: the part every generated data set's cache shares.

A data set of a config lives in ``<cache>/<kind>/<fingerprint>`` (``<cache>`` is
:func:`default_cache_root`).  :func:`ensure_published` makes it appear atomically:

1. a complete copy (the caller's ``is_complete``) is reused as is;
2. otherwise, under an exclusive ``flock`` on ``.<fingerprint>.lock`` (so two processes never
   generate the same data set at once), the leftovers of interrupted runs are removed and the
   data set is generated into a temporary sibling ``.<fingerprint>.partial-*``;
3. the finished sibling is renamed to the final name, so an interrupted run never looks
   complete.  Without ``fcntl`` the loser of the final rename keeps the winner's copy.

:func:`run_jobs` runs the generation chunks in order, in-process or in a pool of worker
processes started with :data:`START_METHOD`; since every item depends only on
``(config, split, index)``, the output is the same for any number of workers.
"""
from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

try:  # POSIX advisory locks; elsewhere the rename race decides
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

__all__ = ['START_METHOD', 'default_cache_root', 'cache_dir', 'read_meta', 'exclusive_lock',
           'remove_leftovers', 'publish', 'ensure_published', 'run_jobs']

#: 'forkserver' where available, not 'fork': a forked child of a parent whose OpenCV thread
#: pool is running hangs in ``cv2.setNumThreads`` (seen once a large cv2.resize had run in
#: the parent); a forkserver child starts from a clean process (one import per worker).
START_METHOD = ('forkserver' if 'forkserver' in multiprocessing.get_all_start_methods()
                else 'spawn')


def default_cache_root() -> Path:
    """``$WSSS_CACHE`` if set, else ``~/.cache/wsss``."""
    env = os.environ.get('WSSS_CACHE')
    return Path(env).expanduser() if env else Path.home() / '.cache' / 'wsss'


def cache_dir(kind: str, fingerprint: str, root=None) -> Path:
    """``<root or default_cache_root()>/<kind>/<fingerprint>``."""
    base = Path(root).expanduser() if root is not None else default_cache_root()
    return base / kind / fingerprint


def read_meta(root, name: str = 'meta.json') -> Optional[dict]:
    """The data set's ``meta.json`` as a dict, or None when missing or unreadable."""
    try:
        with open(Path(root) / name) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def exclusive_lock(path: Path):
    """Hold an exclusive advisory lock on ``path`` (released when the process dies); yields
    whether a lock is held (False without ``fcntl``)."""
    if fcntl is None:  # pragma: no cover
        yield False
        return
    with open(path, 'a+') as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def remove_leftovers(final: Path) -> None:
    """Delete partial directories of earlier, interrupted runs and an incomplete data set under
    the final name (call only under the lock, after ``is_complete`` said no)."""
    for stale in final.parent.glob(f'.{final.name}.partial-*'):
        shutil.rmtree(stale, ignore_errors=True)
    if final.exists():  # an incomplete data set under the final name: not ours to keep
        shutil.rmtree(final)


def publish(tmp: Path, final: Path, is_complete: Callable[[Path], bool]) -> None:
    """Rename the finished ``tmp`` to ``final``; if another process won, keep the winner."""
    try:
        os.rename(tmp, final)
    except OSError:
        if not is_complete(final):
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_published(final: Path, is_complete: Callable[[Path], bool],
                     generate: Callable[[Path], None]) -> Path:
    """Return ``final`` once it holds a complete data set, calling ``generate(tmp)`` (which
    fills the empty directory ``tmp``) at most once among concurrent callers (module doc)."""
    final = Path(final)
    if is_complete(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(final.parent / f'.{final.name}.lock') as locked:
        if is_complete(final):
            return final
        if locked:
            remove_leftovers(final)
        tmp = Path(tempfile.mkdtemp(prefix=f'.{final.name}.partial-', dir=final.parent))
        try:
            generate(tmp)
            publish(tmp, final, is_complete)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


def _init_worker() -> None:
    """Keep OpenCV single-threaded in the workers (the pool already uses the cores)."""
    import cv2
    cv2.setNumThreads(1)


def run_jobs(work: Callable[[tuple], list], jobs: Sequence[tuple], workers: int,
             bar) -> Iterator[list]:
    """Yield ``work(job)`` for each of ``jobs`` in order, in-process (``workers <= 1``) or in a
    pool of ``workers`` processes (``work`` must be a module-level function); ``bar`` (a tqdm
    bar) advances by the length of each result."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            res = work(job)
            bar.update(len(res))
            yield res
        return
    ctx = multiprocessing.get_context(START_METHOD)
    with ctx.Pool(min(workers, len(jobs)), initializer=_init_worker) as pool:
        for res in pool.imap(work, jobs):
            bar.update(len(res))
            yield res
