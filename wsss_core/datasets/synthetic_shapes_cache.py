"""Writing SyntheticShapes to disk once, in the VOC directory layout, safely.

Layout under the dataset root (``<cache>/synthetic_shapes/<fingerprint>``)::

    JPEGImages/<id>.png            RGB, lossless PNG (ids 'train_000000', 'val_000000', ...)
    SegmentationClass/<id>.png     palettised label PNG (VOC palette), 0 bg, 1..K
    saliency/<id>.png              8-bit grayscale saliency stand-in
    parts/<id>.png                 8-bit map of the discriminative part kinds (diagnostics)
    ImageSets/Segmentation/{train,val}.txt          ids, one per line
    ImageSets/Segmentation/{train,val}_cls.txt      '<id> <c> [<c> ...]', 0-based classes
    meta.json                      written last: config, fingerprint, version, names, counts

Robustness (:mod:`.cache_publish`): the dataset is generated into a temporary sibling
directory (``.<fingerprint>.partial-*``) that is renamed to its final name only once
complete, so an interrupted run never looks complete.  Concurrent generators are serialised
by an exclusive ``flock`` on ``.<fingerprint>.lock``; without ``fcntl`` the loser of the final
rename uses the winner's copy.  Every image depends only on ``(config, split, index)``, so the
output is byte-identical for any number of worker processes.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import List, Sequence, Tuple

from .cache_publish import (START_METHOD, cache_dir, default_cache_root,  # noqa: F401 (public)
                            ensure_published, read_meta, run_jobs)

SUBDIRS = ('JPEGImages', 'SegmentationClass', 'saliency', 'parts')
LIST_DIR = Path('ImageSets') / 'Segmentation'
META = 'meta.json'
CHUNK = 50


def dataset_dir(cfg, root=None) -> Path:
    """Where ``cfg``'s dataset lives: ``<root or cache>/synthetic_shapes/<fingerprint>``."""
    return cache_dir('synthetic_shapes', cfg.fingerprint(), root)


def image_id(split: str, index: int) -> str:
    """Image id of ``index`` in ``split``, e.g. ``'train_000042'``."""
    return f'{split}_{index:06d}'


# ----------------------------------------------------------------------------- completeness
def is_complete(root, cfg) -> bool:
    """True when ``root`` holds a finished dataset of ``cfg`` (meta matches, files counted)."""
    from .synthetic_shapes import GENERATOR_VERSION
    root = Path(root)
    meta = read_meta(root)
    if meta is None or meta.get('fingerprint') != cfg.fingerprint():
        return False
    if meta.get('generator_version') != GENERATOR_VERSION:
        return False
    counts = {'train': cfg.num_train, 'val': cfg.num_val}
    if meta.get('counts') != counts:
        return False
    total = sum(counts.values())
    for sub in SUBDIRS:
        try:
            n = sum(1 for name in os.listdir(root / sub) if name.endswith('.png'))
        except OSError:
            return False
        if n != total:
            return False
    return all((root / LIST_DIR / f'{s}{x}.txt').is_file()
               for s in counts for x in ('', '_cls'))


# ----------------------------------------------------------------------------- writing
def _save_png(path: Path, arr, palette=None) -> None:
    """Plain PNG write (no temp file, no fsync): only ever used inside the partial directory,
    whose final rename is what makes the dataset appear.  A per-file fsync costs 1-3 ms under
    I/O load (measured), four files per image, which made generation 3-5x slower."""
    from PIL import Image
    img = Image.fromarray(arr)
    if palette is not None:  # mode L -> P: always with a palette (a bare P is saved as 1-bit)
        img.putpalette(palette)
    img.save(path, format='PNG', compress_level=1)


@functools.lru_cache(maxsize=1)
def _label_palette() -> tuple:
    from ..visualization.palette import voc_palette
    return tuple(voc_palette(256).reshape(-1).tolist())


def write_sample(root: Path, sid: str, sample: dict) -> None:
    """Write one sample's four PNGs (RGB image, VOC-palette label, saliency, parts)."""
    _save_png(root / 'JPEGImages' / f'{sid}.png', sample['img'])
    _save_png(root / 'SegmentationClass' / f'{sid}.png', sample['mask'], _label_palette())
    _save_png(root / 'saliency' / f'{sid}.png', sample['saliency'])
    _save_png(root / 'parts' / f'{sid}.png', sample['parts'])


def _work_chunk(job: Tuple) -> List[Tuple[int, List[int], int]]:
    """Generate and write the images ``indices`` of one split; return their labels."""
    from .synthetic_shapes import generate_sample
    cfg, root, split, split_id, indices = job
    out = []
    for index in indices:
        sample = generate_sample(cfg, split_id, index)
        write_sample(Path(root), image_id(split, index), sample)
        classes = [int(c) for c in sample['labels'].nonzero()[0]]
        out.append((index, classes, int(sample['context'])))
    return out


def _jobs(cfg, root: Path) -> List[Tuple]:
    from .synthetic_shapes import SPLITS
    jobs = []
    for split, split_id in SPLITS.items():
        n = cfg.split_size(split)
        for start in range(0, n, CHUNK):
            indices = list(range(start, min(n, start + CHUNK)))
            jobs.append((cfg, str(root), split, split_id, indices))
    return jobs


def _write_lists(root: Path, split: str, rows: Sequence[Tuple[int, List[int], int]]) -> None:
    from ..io import atomic_write
    rows = sorted(rows)
    with atomic_write(root / LIST_DIR / f'{split}.txt', 'w') as fh:
        fh.write(''.join(f'{image_id(split, i)}\n' for i, _, _ in rows))
    with atomic_write(root / LIST_DIR / f'{split}_cls.txt', 'w') as fh:
        fh.write(''.join(f'{image_id(split, i)} {" ".join(map(str, c))}\n' for i, c, _ in rows))


def _meta(cfg, rows_by_split) -> dict:
    from .synthetic_shapes import CLASS_NAMES, GENERATOR_VERSION, PART_NAMES
    per_class = {}
    for split, rows in rows_by_split.items():
        hist = [0] * cfg.num_classes
        for _, classes, _ in rows:
            for c in classes:
                hist[c] += 1
        per_class[split] = hist
    return dict(name='SyntheticShapes', fingerprint=cfg.fingerprint(),
                generator_version=GENERATOR_VERSION, config=cfg.to_dict(),
                class_names=list(CLASS_NAMES[:cfg.num_classes]), part_names=list(PART_NAMES),
                counts={s: len(r) for s, r in rows_by_split.items()},
                images_per_class=per_class, img_suffix='.png', seg_map_suffix='.png')


def generate_into(root: Path, cfg, workers: int = 2, progress: bool = True) -> None:
    """Generate the whole dataset of ``cfg`` into the (empty) directory ``root``; meta last.
    The progress bar shows with ``progress`` unless the run says no progress bars
    (:func:`wsss_core.console.progress_enabled`: ``--no-progress``)."""
    from tqdm import tqdm
    from .. import console
    from ..io import write_json
    for sub in SUBDIRS:
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / LIST_DIR).mkdir(parents=True, exist_ok=True)
    jobs = _jobs(cfg, root)
    rows_by_split = {'train': [], 'val': []}
    total = cfg.num_train + cfg.num_val
    with tqdm(total=total, desc=f'SyntheticShapes {cfg.fingerprint()}', unit='img',
              disable=not (progress and console.progress_enabled())) as bar:
        for job, res in zip(jobs, run_jobs(_work_chunk, jobs, workers, bar)):
            rows_by_split[job[2]].extend(res)
    for split, rows in rows_by_split.items():
        _write_lists(root, split, rows)
    write_json(root / META, _meta(cfg, rows_by_split))


# ----------------------------------------------------------------------------- orchestration
def ensure_generated(cfg, root=None, workers: int = 2, progress: bool = True) -> Path:
    """Generate ``cfg``'s dataset once and return its root directory.

    ``root`` is the cache base (default: ``$WSSS_CACHE`` or ``~/.cache/wsss``); the dataset
    goes to ``<root>/synthetic_shapes/<cfg.fingerprint()>``.  A complete dataset (matching
    ``meta.json`` and file counts) is reused as is.  Otherwise it is generated into a
    temporary sibling directory and renamed into place when complete, under an exclusive
    lock so that two processes never generate the same dataset at once
    (:func:`.cache_publish.ensure_published`).  The output is identical for any ``workers``;
    ``progress`` shows a tqdm bar.
    """
    return ensure_published(
        dataset_dir(cfg, root), lambda path: is_complete(path, cfg),
        lambda tmp: generate_into(tmp, cfg, workers=workers, progress=progress))
