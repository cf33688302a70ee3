"""Per-image work over a process pool: ordered results, a progress bar, inline when small.

:func:`imap_images` / :func:`map_images` run ``fn(item)`` for every item and return the
results **in the order of the items**, so a run with ``workers = n`` gives exactly what the
inline loop (``workers`` 0 or 1) gives.  The pool is spawn-based (safe with torch and
OpenCV threads in the parent); ``fn`` is pickled once and unpickled once per worker (by
the pool initializer, after the worker's thread counts are limited), and items travel in
chunks.  ``fn`` may return results or write its own output per item and return a small
record (e.g. the image id), which keeps memory flat on big data sets.

:class:`RefineChainJob` is such an ``fn`` for the RefineLabels stage: one image's sample ->
refiner chain -> checked, atomically written label PNG.
"""
from __future__ import annotations

import multiprocessing
import os
import pickle
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

from tqdm import tqdm

__all__ = ['imap_images', 'map_images', 'RefineChainJob']

_THREAD_VARS = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS',
                'NUMEXPR_NUM_THREADS')
_worker_fn: Optional[Callable] = None


def _init_worker(payload: bytes, threads: int) -> None:
    """Limit threads (before fn's imports run), then unpickle ``fn`` into this worker."""
    global _worker_fn
    for var in _THREAD_VARS:
        os.environ[var] = str(threads)
    _worker_fn = pickle.loads(payload)
    if 'cv2' in sys.modules:
        sys.modules['cv2'].setNumThreads(threads)
    if 'torch' in sys.modules:
        sys.modules['torch'].set_num_threads(threads)


def _run_item(item):
    return _worker_fn(item)


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

    An exception raised by ``fn`` in a worker is re-raised here and stops the pool.
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
    return _pooled(ctx, payload, items, n_proc, chunk, int(threads_per_worker), bar)


def _inline(fn, items, bar_args: dict) -> Iterator:
    bar = tqdm(**bar_args)
    try:
        for item in items:
            yield fn(item)
            bar.update()
    finally:
        bar.close()


def _pooled(ctx, payload: bytes, items, n_proc: int, chunk: int, threads: int,
            bar_args: dict) -> Iterator:
    bar = tqdm(**bar_args)
    try:
        with ctx.Pool(n_proc, initializer=_init_worker, initargs=(payload, threads)) as pool:
            for result in pool.imap(_run_item, items, chunksize=chunk):
                yield result
                bar.update()
    finally:
        bar.close()


def map_images(fn: Callable[[Any], Any], items: Sequence, workers: int = 0,
               desc: Optional[str] = None, progress: bool = True, **kwargs) -> List:
    """``list(imap_images(...))``: the results of ``fn`` over ``items``, in order."""
    return list(imap_images(fn, items, workers=workers, desc=desc, progress=progress, **kwargs))


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
