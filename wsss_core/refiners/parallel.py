"""Per-image work over a process pool: ordered results, a progress bar, inline when small.

:func:`imap_images` / :func:`map_images` run ``fn(item)`` for every item and return the
results **in the order of the items**, so a run with ``workers = n`` gives exactly what the
inline loop (``workers`` 0 or 1) gives.  The pool is spawn-based (safe with torch and
OpenCV threads in the parent); ``fn`` is pickled once and unpickled once per worker (by
the pool initializer, after the worker's thread counts are limited), and items travel in
chunks.  ``fn`` may return results or write its own output per item and return a small
record (e.g. the image id), which keeps memory flat on big data sets.

:class:`StreamingMap` is the same machinery for items that become ready one at a time:
the caller hands an item to :meth:`~StreamingMap.submit` (e.g. an image whose network
scores were just written) and goes on working (inferring the next image) while the workers
run ``fn`` on it.  At most ``max_pending`` items are in flight (submit waits for the oldest when the
window is full), so memory stays bounded; :meth:`~StreamingMap.results` returns the
results in submission order, and an error in ``fn`` is re-raised here as
:class:`ItemError` naming the item.

A worker process that dies (killed by the out-of-memory killer during a CRF, a crash in C
code) does not hang the caller: the pool is a :class:`~concurrent.futures.ProcessPoolExecutor`,
which fails every unfinished item when a worker dies, and each worker marks in shared memory
which item it starts, so the error (:class:`ItemError`) names the item the dead worker was
running; the remaining workers are stopped.

:class:`RefineChainJob` is such an ``fn`` for the RefineLabels stage: one image's sample ->
refiner chain -> checked, atomically written label PNG.
"""
from __future__ import annotations

import collections
import multiprocessing
import os
import pickle
import reprlib
import signal
import sys
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Sequence, Tuple

from tqdm import tqdm

__all__ = ['imap_images', 'map_images', 'StreamingMap', 'ItemError', 'RefineChainJob']

_THREAD_VARS = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS',
                'NUMEXPR_NUM_THREADS')
_worker_fn: Optional[Callable] = None
_started = None   # in a worker: the shared array of the pids that started each item


def _init_worker(payload: bytes, threads: int, started=None) -> None:
    """Limit threads (before fn's imports run), then unpickle ``fn`` into this worker."""
    global _worker_fn, _started
    for var in _THREAD_VARS:
        os.environ[var] = str(threads)
    _started = started
    _worker_fn = pickle.loads(payload)
    if 'cv2' in sys.modules:
        sys.modules['cv2'].setNumThreads(threads)
    if 'torch' in sys.modules:
        sys.modules['torch'].set_num_threads(threads)


def _run_items(first: int, items: list) -> list:
    """In a worker: ``fn`` over a chunk of items numbered ``first, first + 1, ...``; at the
    item's number (modulo the array length) write this process's pid while ``fn`` runs on
    it, and minus the pid once it returned."""
    pid, results = os.getpid(), []
    for seq, item in enumerate(items, first):
        _started[seq % len(_started)] = pid
        results.append(_worker_fn(item))
        _started[seq % len(_started)] = -pid
    return results


def _pickled(fn: Callable) -> bytes:
    try:
        return pickle.dumps(fn, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # PicklingError, AttributeError (local objects), TypeError
        raise TypeError(
            f'{fn!r} cannot be sent to worker processes ({exc}): pass a module-level function, '
            'a functools.partial of one or an instance of a module-level class, not a lambda '
            'or a closure; or use workers=0') from exc


def _chunksize(n_items: int, workers: int) -> int:
    """About four chunks per worker, at most 16 items each (keeps the progress bar moving)."""
    return max(1, min(16, n_items // (4 * workers)))


class ItemError(RuntimeError):
    """``fn`` failed on one item (its worker raised, or its worker process died); the
    message names the item and the original exception (with the worker's traceback, or the
    :class:`~concurrent.futures.process.BrokenProcessPool`) is the ``__cause__``."""

    def __init__(self, message: str, name: str):
        super().__init__(message)
        self.name = name


def _exit_reason(code: Optional[int]) -> str:
    """How a worker process ended, from its exit code (negative: the signal that ended it)."""
    if code is None:
        return 'died'
    if code >= 0:
        return f'exited with code {code}'
    try:
        sig = signal.Signals(-code).name
    except ValueError:
        sig = f'signal {-code}'
    hint = (' (e.g. by the out-of-memory killer: use fewer workers or smaller inputs)'
            if -code == signal.SIGKILL else '')
    return f'was killed by {sig}{hint}'


class _WorkerPool:
    """``n_proc`` worker processes holding ``fn`` (see :func:`_init_worker`), over a
    :class:`~concurrent.futures.ProcessPoolExecutor`, that mark the item each one starts.

    The caller numbers the items (``seq``); at most ``slots`` consecutive numbers may be
    unfinished at once (the marks are kept modulo ``slots``).  When a worker dies the
    executor fails every unfinished item with ``BrokenProcessPool`` and terminates the other
    workers; :meth:`died_on` then tells which item the dead worker was running.
    """

    def __init__(self, ctx, payload: bytes, n_proc: int, threads: int, slots: int):
        # item seq % slots: 0 not started, pid running in that worker, -pid done there
        self._started = ctx.RawArray('i', max(1, slots))
        self._executor = ProcessPoolExecutor(n_proc, mp_context=ctx, initializer=_init_worker,
                                             initargs=(payload, threads, self._started))

    def submit(self, first: int, items: list) -> Future:
        """Run ``fn`` on ``items`` (numbered from ``first``); the future gives their results."""
        for seq in range(first, first + len(items)):
            self._started[seq % len(self._started)] = 0
        return self._executor.submit(_run_items, first, items)

    def shutdown(self, terminate: bool = False) -> None:
        """Wait for the items in flight (``terminate``: stop the workers now), end the pool."""
        if terminate:
            for proc in self._processes():
                proc.terminate()
        self._executor.shutdown(wait=True, cancel_futures=terminate)

    def died_on(self, futures: Dict[int, Future]) -> Dict[int, Optional[int]]:
        """After a worker died: shut the pool down and return ``{seq: exit code}`` of the
        unfinished items (``futures``: seq -> its future) whose worker died on its own
        while running them.

        The workers the executor terminated afterwards (SIGTERM) are left out; where no exit
        code tells them apart, every item that was running is returned.
        """
        procs = self._processes()
        self._executor.shutdown(wait=True)
        codes = {proc.pid: proc.exitcode for proc in procs}
        running = {}
        for seq, future in futures.items():
            pid = self._started[seq % len(self._started)]
            if pid > 0 and future.done() and isinstance(future.exception(), BrokenProcessPool):
                running[seq] = pid
        died = {seq: codes[pid] for seq, pid in running.items()
                if codes.get(pid) not in (None, -signal.SIGTERM)}
        return died or {seq: codes.get(pid) for seq, pid in running.items()}

    def _processes(self) -> list:
        """The worker processes (from the executor's table; empty where it has none)."""
        return list((getattr(self._executor, '_processes', None) or {}).values())


def _death_error(label: str, died: Dict[int, Optional[int]], name_of: Callable[[int], str],
                 oldest: int) -> ItemError:
    """The :class:`ItemError` for a dead worker: it names the item the worker was running
    (``died``, from :meth:`_WorkerPool.died_on`), or the oldest unfinished item when the
    worker died outside any item (e.g. in the pool initializer)."""
    if not died:
        name = name_of(oldest)
        msg = (f'{label}: {name} failed: a worker process died before it finished, outside '
               f'any item (e.g. while starting up: see the log above); the pool was stopped')
        return ItemError(msg, name)
    first, *others = sorted(died)
    name = name_of(first)
    msg = f'{label}: {name} failed: its worker process {_exit_reason(died[first])}'
    if others:
        msg += '; also unfinished on a dead worker: ' + ', '.join(
            f'{name_of(seq)} (worker {_exit_reason(died[seq])})' for seq in others)
    return ItemError(msg + '; the pool was stopped', name)


def _item_name(fn: Callable, item) -> str:
    """How errors name ``item``: ``fn.item_name(item)`` where ``fn`` has it, else its repr."""
    if callable(getattr(fn, 'item_name', None)):
        return str(fn.item_name(item))
    return f'item {reprlib.repr(item)}'


def imap_images(fn: Callable[[Any], Any], items: Sequence, workers: int = 0,
                desc: Optional[str] = None, progress: bool = True,
                chunksize: Optional[int] = None, threads_per_worker: int = 1,
                start_method: str = 'spawn') -> Iterator:
    """Yield ``fn(item)`` for each item, in order, computed by ``workers`` processes.

    Args:
        fn: picklable callable (see the module docstring); with workers <= 1 it runs here.
        items: a sequence (its length sizes the progress bar and the chunks).
        workers: number of processes; 0 or 1 runs inline, in this process.
        desc: progress-bar label; ``progress=False`` hides the bar.
        chunksize: items per task (default: about four chunks per worker, at most 16).
        threads_per_worker: OMP/MKL/OpenCV/torch threads in each worker.
        start_method: multiprocessing start method ('spawn', 'forkserver' or 'fork').

    An exception raised by ``fn`` in a worker is re-raised here and stops the pool.  A
    worker process that dies raises :class:`ItemError` naming the item it was running
    (``fn.item_name(item)`` where ``fn`` has that method) and stops the pool.
    """
    items = list(items)
    workers = int(workers)
    if workers < 0:
        raise ValueError(f'workers must be >= 0, got {workers}')
    bar = dict(total=len(items), desc=desc, unit='img', disable=not progress)
    if workers <= 1 or len(items) <= 1:
        return _inline(fn, items, bar)
    n_proc = min(workers, len(items))
    chunk = int(chunksize) if chunksize else _chunksize(len(items), n_proc)
    if chunk < 1:
        raise ValueError(f'chunksize must be >= 1, got {chunksize}')
    payload = _pickled(fn)
    ctx = multiprocessing.get_context(start_method)
    label = desc or 'map_images'
    return _pooled(ctx, payload, items, n_proc, chunk, int(threads_per_worker), bar,
                   label, lambda seq: _item_name(fn, items[seq]))


def _inline(fn, items, bar_args: dict) -> Iterator:
    bar = tqdm(**bar_args)
    try:
        for item in items:
            yield fn(item)
            bar.update()
    finally:
        bar.close()


def _pooled(ctx, payload: bytes, items, n_proc: int, chunk: int, threads: int,
            bar_args: dict, label: str, name_of: Callable[[int], str]) -> Iterator:
    bar = tqdm(**bar_args)
    pool = _WorkerPool(ctx, payload, n_proc, threads, slots=len(items))
    chunks: Dict[int, Future] = {}   # first item number -> the future of its chunk
    finished = False
    try:
        try:
            for first in range(0, len(items), chunk):
                chunks[first] = pool.submit(first, items[first:first + chunk])
            for future in chunks.values():
                for result in future.result():
                    yield result
                    bar.update()
        except BrokenProcessPool as exc:
            futures = {seq: future for first, future in chunks.items()
                       for seq in range(first, min(first + chunk, len(items)))}
            oldest = min((s for s, f in futures.items() if not _succeeded(f)), default=0)
            raise _death_error(label, pool.died_on(futures), name_of, oldest) from exc
        finished = True
    finally:
        pool.shutdown(terminate=not finished)
        bar.close()


def _succeeded(future: Future) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


def map_images(fn: Callable[[Any], Any], items: Sequence, workers: int = 0,
               desc: Optional[str] = None, progress: bool = True, **kwargs) -> List:
    """``list(imap_images(...))``: the results of ``fn`` over ``items``, in order."""
    return list(imap_images(fn, items, workers=workers, desc=desc, progress=progress, **kwargs))


class StreamingMap:
    """Run ``fn`` on items submitted one at a time, in worker processes, while the caller
    goes on working; results in submission order.

    ``workers = 0`` runs ``fn`` inline at :meth:`submit` (nothing overlaps); ``workers = n
    >= 1`` starts a spawn pool of ``n`` processes (unlike :func:`imap_images`, one worker
    is a real process: it overlaps with the caller); the processes start with the first
    items.  The workers are set up as :func:`imap_images`'s (``fn`` unpickled once per
    worker, thread counts limited).  A worker process that dies raises :class:`ItemError`
    naming the item it was running, and stops the pool.

    Args:
        fn: picklable callable (see the module docstring).
        workers: processes (0: inline).
        max_pending: items in flight at most (default ``2 * workers``: one running and one
            queued per worker); :meth:`submit` waits for the oldest when the window is full.
        desc / progress / total: the progress bar (advanced as results come back).
        threads_per_worker, start_method: as :func:`imap_images`.

    Use it as a context manager: leaving the block on an exception stops the workers.
    """

    def __init__(self, fn: Callable[[Any], Any], workers: int = 0,
                 max_pending: Optional[int] = None, desc: Optional[str] = None,
                 progress: bool = True, total: Optional[int] = None,
                 threads_per_worker: int = 1, start_method: str = 'spawn'):
        workers = int(workers)
        if workers < 0:
            raise ValueError(f'workers must be >= 0, got {workers}')
        self.max_pending = int(max_pending) if max_pending is not None else max(1, 2 * workers)
        if self.max_pending < 1:
            raise ValueError(f'max_pending must be >= 1, got {max_pending}')
        self.fn, self.workers, self.desc = fn, workers, desc
        self._results: List[Any] = []
        self._pending: Deque[Tuple[int, str, Future]] = collections.deque()
        self._pool: Optional[_WorkerPool] = None
        if workers:
            ctx = multiprocessing.get_context(start_method)
            # the pending items have consecutive numbers: max_pending slots tell them apart
            self._pool = _WorkerPool(ctx, _pickled(fn), workers, int(threads_per_worker),
                                     slots=self.max_pending)
        self._bar = tqdm(total=total, desc=desc, unit='img', disable=not progress)

    def __enter__(self) -> 'StreamingMap':
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(terminate=exc_type is not None)

    @property
    def in_flight(self) -> int:
        """Items submitted to the workers whose results were not collected yet."""
        return len(self._pending)

    def submit(self, item, name: Optional[str] = None) -> None:
        """Hand ``item`` (called ``name`` in errors; default ``repr(item)``) to ``fn``; waits
        while ``max_pending`` items are in flight; raises :class:`ItemError` for an earlier
        item that failed."""
        name = repr(item) if name is None else str(name)
        slot = len(self._results)
        self._results.append(None)
        if self._pool is None:
            self._results[slot] = self._checked(name, self.fn, item)
            self._bar.update()
            return
        self._collect_ready()
        while len(self._pending) >= self.max_pending:
            self._collect_oldest()
        try:
            future = self._pool.submit(slot, [item])
        except BrokenProcessPool as exc:   # a worker died since the last collect
            future = Future()
            future.set_exception(exc)
            self._pending.append((slot, name, future))
            self._worker_died(exc)
        self._pending.append((slot, name, future))

    def results(self) -> List[Any]:
        """Wait for every submitted item; ``fn``'s results in submission order."""
        while self._pending:
            self._collect_oldest()
        return list(self._results)

    def close(self, terminate: bool = False) -> None:
        """Stop the workers (``terminate``: without waiting for items in flight)."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(terminate)
        self._bar.close()

    # ------------------------------------------------------------------ internals
    def _checked(self, name: str, get: Callable, *args):
        try:
            return get(*args)
        except Exception as exc:
            raise ItemError(f"{self.desc or 'StreamingMap'}: {name} failed: "
                            f'{type(exc).__name__}: {exc}', name) from exc

    def _collect_oldest(self) -> None:
        slot, name, future = self._pending[0]
        if isinstance(future.exception(), BrokenProcessPool):   # waits for the item
            self._worker_died(future.exception())
        self._pending.popleft()
        self._results[slot] = self._checked(name, future.result)[0]
        self._bar.update()

    def _collect_ready(self) -> None:
        """Take the finished results off the front of the window, without waiting."""
        while self._pending and self._pending[0][2].done():
            self._collect_oldest()

    def _worker_died(self, exc: BrokenProcessPool):
        """A worker process died: stop the pool, raise :class:`ItemError` naming its item."""
        pool, self._pool = self._pool, None
        names = {slot: name for slot, name, _ in self._pending}
        futures = {slot: future for slot, _, future in self._pending}
        oldest = min((s for s, f in futures.items() if not _succeeded(f)), default=0)
        died = pool.died_on(futures)
        raise _death_error(self.desc or 'StreamingMap', died, names.get, oldest) from exc


class RefineChainJob:
    """One image of the RefineLabels stage: CAMs (+ image, saliency, extra CAMs) -> refiners
    -> label PNG.

    Called with a dataset index; writes ``out_dir/<id>.png`` atomically and returns the id.
    Picklable when the dataset and the refiners are (plain objects are), so that
    :func:`map_images` can run it in workers.

    Args:
        dataset: a VOC-layout dataset (``records``, ``load_sample``, ``num_classes``).
        refiners: built LABEL_REFINERS, applied in order.
        cam_dir: folder of ``<id>.npz`` CAM files.
        out_dir: folder for ``<id>.png`` labels.
        extra_cam_dirs: ``{sample key: folder of <id>.npz}``; each sample then carries
            ``sample[key]`` (K, H, W) float32 and ``sample[key + '_class_ids']`` (K,).
    """

    def __init__(self, dataset, refiners: Sequence[Callable], cam_dir, out_dir,
                 extra_cam_dirs: Optional[Dict[str, Any]] = None):
        self.dataset = dataset
        self.refiners = list(refiners)
        self.cam_dir = Path(cam_dir)
        self.out_dir = Path(out_dir)
        self.extra_cam_dirs = {k: Path(v) for k, v in (extra_cam_dirs or {}).items()}
        self.needs = frozenset(k for r in self.refiners for k in getattr(r, 'needs', ()))

    def item_name(self, index: int) -> str:
        """How errors (e.g. a dead worker's) name dataset item ``index``."""
        return f'image {self.dataset.records[index].img_id}'

    def sample(self, index: int) -> dict:
        """The refiners' input for dataset item ``index``."""
        from ..io import load_cam

        rec = self.dataset.records[index]
        cams, class_ids = load_cam(self.cam_dir / f'{rec.img_id}.npz')
        sample = dict(img_id=rec.img_id, cams=cams, class_ids=class_ids)
        for key, folder in self.extra_cam_dirs.items():
            sample[key], sample[f'{key}_class_ids'] = load_cam(folder / f'{rec.img_id}.npz')
        if self.needs & {'img', 'saliency'}:
            raw = self.dataset.load_sample(index)
            sample.update({k: raw.get(k) for k in ('img', 'saliency')})
        return sample

    def label(self, index: int):
        """Run the chain on item ``index``; return ``(img_id, label)`` (values checked)."""
        from ..io import check_label_values

        sample = self.sample(index)
        for refiner in self.refiners:
            sample = refiner(sample)
        if sample.get('label') is None:
            raise ValueError(f"the refiner chain set no label for image {sample['img_id']}")
        check_label_values(sample['label'], self.dataset.num_classes,
                           f"pseudo label of {sample['img_id']}")
        return sample['img_id'], sample['label']

    def __call__(self, index: int) -> str:
        from ..io import save_label_png

        img_id, label = self.label(index)
        save_label_png(self.out_dir / f'{img_id}.png', label)
        return img_id
