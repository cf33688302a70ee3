"""Writing the ShapeCorpus to disk once, as numpy arrays, safely.

Layout under the corpus root (``<cache>/shape_corpus/<fingerprint>``)::

    train_images.npy   (N, H, W, 3) uint8 RGB, image i of the train split at row i
    train_labels.npy   (N,) int16, its class (index mod num_classes)
    val_images.npy, val_labels.npy   the same for the val split
    meta.json          written last: config, fingerprint, version, class names, counts

Images are read back with ``np.load(..., mmap_mode='r')``.  The corpus is generated into a
temporary sibling directory renamed into place once complete, under an exclusive lock
(:mod:`.cache_publish`); worker processes write their chunks into the memory-mapped arrays
at the chunk's rows, and every image depends only on ``(config, split, index)``, so the files
are byte-identical for any number of workers.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from .cache_publish import cache_dir, ensure_published, read_meta, run_jobs

META = 'meta.json'
CHUNK = 100
KIND = 'shape_corpus'


def corpus_dir(cfg, root=None) -> Path:
    """Where ``cfg``'s corpus lives: ``<root or cache>/shape_corpus/<fingerprint>``."""
    return cache_dir(KIND, cfg.fingerprint(), root)


def array_paths(root, split: str) -> Tuple[Path, Path]:
    """``(images, labels)`` file paths of ``split`` under the corpus ``root``."""
    root = Path(root)
    return root / f'{split}_images.npy', root / f'{split}_labels.npy'


def _expected_arrays(cfg, split: str):
    n, s = cfg.split_size(split), cfg.image_size
    return ((n, s, s, 3), np.dtype(np.uint8)), ((n,), np.dtype(np.int16))


def npy_header(path) -> Optional[Tuple[tuple, np.dtype, int]]:
    """``(shape, dtype, data offset)`` of a ``.npy`` file, or None when it cannot be read."""
    try:
        with open(path, 'rb') as fh:
            version = np.lib.format.read_magic(fh)
            read = {(1, 0): np.lib.format.read_array_header_1_0,
                    (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read is None:
                return None
            shape, fortran, dtype = read(fh)
            return (tuple(shape), np.dtype(dtype), fh.tell()) if not fortran else None
    except (OSError, ValueError):
        return None


def _array_ok(path: Path, shape: tuple, dtype: np.dtype) -> bool:
    """The file holds a C-order array of this shape and dtype, with all its bytes."""
    header = npy_header(path)
    if header is None or header[0] != shape or header[1] != dtype:
        return False
    return path.stat().st_size == header[2] + int(np.prod(shape)) * dtype.itemsize


def is_complete(root, cfg) -> bool:
    """True when ``root`` holds a finished corpus of ``cfg``: ``meta.json`` names its
    fingerprint, version and counts, and every array file has its shape, dtype and size."""
    from .shape_corpus import CORPUS_VERSION, SPLITS
    root = Path(root)
    meta = read_meta(root, META)
    if meta is None or meta.get('fingerprint') != cfg.fingerprint():
        return False
    if meta.get('corpus_version') != CORPUS_VERSION:
        return False
    if meta.get('counts') != {s: cfg.split_size(s) for s in SPLITS}:
        return False
    for split in SPLITS:
        for path, (shape, dtype) in zip(array_paths(root, split), _expected_arrays(cfg, split)):
            if not _array_ok(path, shape, dtype):
                return False
    return True


# ----------------------------------------------------------------------------- writing
def _work_chunk(job: Tuple) -> List[int]:
    """Generate images ``start..stop-1`` of one split into its memory-mapped image file;
    return their labels."""
    from .shape_corpus import generate_corpus_image
    cfg, images_path, split_id, start, stop = job
    images = np.load(images_path, mmap_mode='r+', allow_pickle=False)
    labels = []
    for index in range(start, stop):
        images[index], label = generate_corpus_image(cfg, split_id, index)
        labels.append(label)
    images.flush()
    del images
    return labels


def _create_image_file(path: Path, shape: tuple) -> None:
    """An all-zero uint8 ``.npy`` file of ``shape`` (memory-mapped; a plain save when empty)."""
    if int(np.prod(shape)) == 0:
        np.save(path, np.zeros(shape, np.uint8))
        return
    arr = np.lib.format.open_memmap(path, mode='w+', dtype=np.uint8, shape=shape)
    arr.flush()
    del arr


def _meta(cfg, labels_by_split) -> dict:
    from .shape_corpus import CORPUS_VERSION, OUTLINE_NAMES, RNG_STREAM, TEXTURE_NAMES
    return dict(name='ShapeCorpus', fingerprint=cfg.fingerprint(),
                corpus_version=CORPUS_VERSION, rng_stream=RNG_STREAM, config=cfg.to_dict(),
                class_names=list(cfg.class_names), texture_names=list(TEXTURE_NAMES),
                outline_names=list(OUTLINE_NAMES),
                counts={s: len(v) for s, v in labels_by_split.items()},
                images_per_class={s: np.bincount(v, minlength=cfg.num_classes).tolist()
                                  for s, v in labels_by_split.items()},
                image_shape=[cfg.image_size, cfg.image_size, 3])


def generate_into(root: Path, cfg, workers: int = 2, progress: bool = True) -> None:
    """Generate the whole corpus of ``cfg`` into the (empty) directory ``root``; meta last.
    The progress bar shows with ``progress`` unless the run says no progress bars
    (:func:`wsss_core.console.progress_enabled`: ``--no-progress``)."""
    from tqdm import tqdm
    from .. import console
    from ..io import write_json
    from .shape_corpus import SPLITS
    root = Path(root)
    jobs = []
    for split, split_id in SPLITS.items():
        n, s = cfg.split_size(split), cfg.image_size
        images_path = array_paths(root, split)[0]
        _create_image_file(images_path, (n, s, s, 3))
        jobs += [(cfg, str(images_path), split_id, start, min(n, start + CHUNK))
                 for start in range(0, n, CHUNK)]
    split_of = {split_id: split for split, split_id in SPLITS.items()}
    labels_by_split = {split: [] for split in SPLITS}
    total = sum(cfg.split_size(s) for s in SPLITS)
    with tqdm(total=total, desc=f'ShapeCorpus {cfg.fingerprint()}', unit='img',
              disable=not (progress and console.progress_enabled())) as bar:
        for job, labels in zip(jobs, run_jobs(_work_chunk, jobs, workers, bar)):
            labels_by_split[split_of[job[2]]].extend(labels)
    for split, labels in labels_by_split.items():
        np.save(array_paths(root, split)[1], np.asarray(labels, np.int16))
    write_json(root / META, _meta(cfg, labels_by_split))


def ensure_corpus(cfg, root=None, workers: int = 2, progress: bool = True) -> Path:
    """Generate ``cfg``'s corpus once and return its directory.

    ``root`` is the cache base (default: ``$WSSS_CACHE`` or ``~/.cache/wsss``); the corpus
    goes to ``<root>/shape_corpus/<cfg.fingerprint()>``.  A complete corpus
    (:func:`is_complete`) is reused as is; otherwise it is generated into a temporary sibling
    and renamed into place, under an exclusive lock
    (:func:`.cache_publish.ensure_published`).  Identical files for any ``workers``;
    ``progress`` shows a tqdm bar.
    """
    return ensure_published(
        corpus_dir(cfg, root), lambda path: is_complete(path, cfg),
        lambda tmp: generate_into(tmp, cfg, workers=workers, progress=progress))
