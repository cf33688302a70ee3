"""Split the per-image work of an offline stage across processes ("shards").

Two ways to run ``n`` shards of a stage:

* **torchrun** (``wsss-run CONFIG --launcher pytorch``): shard ``i`` of ``n`` is
  ``torch.distributed``'s rank ``i`` of world size ``n``.  The ranks run side by side; the
  runner gathers their records and the main process (rank 0) writes the one manifest.
* **``WSSS_SHARD=i/n``** (plain processes, no ``torch.distributed``; e.g. several CPU
  processes on one machine, or jobs of a batch queue on a shared file system): the process
  does shard ``i`` of ``n`` (``0 <= i < n``).  It runs the config's stages up to the first
  unfinished one, which must be a sharded stage, does its share of that stage, writes
  ``<stage>/shards/<i>-of-<n>.json`` (its record: counts of its share) and stops.  The shard
  whose record completes the set (all of ``0..n-1`` present) merges the records and writes
  the stage manifest; then the next stage can run (in shards again, or in a plain run).
  ``WSSS_SHARD`` unset, empty or ``0/1`` means no sharding.

Which images a shard does: :func:`shard` splits the **full** image list of the stage by
stride (``items[i::n]``), and the stage then drops the images whose files already exist.
Splitting before the existence check (not the to-do list itself) keeps the split the same
in every process whatever each one finds on disk when it looks, so no image is done twice
or left out while the shards write concurrently; and a rerun of a lost shard (same ``n``)
redoes exactly that shard's missing images.

The stages that take part are built on :class:`~wsss_core.pipeline.per_image.PerImageStage`
with the class attribute ``sharded = True`` (the base's default): the base processes
``shard(...)`` of the stage's items and records counts that add up over shards (``images``,
``computed``, ``reused``); the stage's ``merge_shards(ctx, record) -> record`` is called
once in the main process after every shard finished and its counts were summed (e.g. to
evaluate over all images from the files the shards wrote).
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Sequence

__all__ = ['SHARD_ENV', 'SHARDS_DIR', 'Shard', 'current_shard', 'parse_shard', 'shard',
           'sum_counts', 'is_sharded_stage', 'shard_record_path', 'read_shard_records',
           'shard_lock']

SHARD_ENV = 'WSSS_SHARD'
SHARDS_DIR = 'shards'


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``; ``source`` is 'torch.distributed', 'env' or 'none'."""
    index: int = 0
    count: int = 1
    source: str = 'none'

    @property
    def split(self) -> bool:
        """More than one shard: this process does only part of the images."""
        return self.count > 1

    @property
    def independent(self) -> bool:
        """A ``WSSS_SHARD`` process: no process group, other shards are met only on disk."""
        return self.source == 'env' and self.count > 1

    @property
    def tag(self) -> str:
        return f'{self.index}-of-{self.count}'

    def take(self, items: Iterable) -> list:
        """This shard's part of ``items``: every ``count``-th item from ``index`` on."""
        return list(items)[self.index::self.count]


def parse_shard(value: str) -> Shard:
    """``'i/n'`` -> ``Shard(i, n, 'env')``, or a ValueError saying what is expected."""
    text = (value or '').strip()
    if not text:
        return Shard()
    try:
        index, count = (int(v) for v in text.split('/'))
    except ValueError:
        raise ValueError(f"{SHARD_ENV}={value!r}: expected 'i/n' with integers "
                         f'0 <= i < n, e.g. {SHARD_ENV}=0/4') from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f'{SHARD_ENV}={value!r}: need 0 <= i < n (shards are numbered '
                         f'0..n-1), e.g. {SHARD_ENV}=0/{max(count, 2)}')
    return Shard(index, count, 'env' if count > 1 else 'none')


def current_shard() -> Shard:
    """The shard of this process: the torch.distributed rank when a process group is up,
    else ``$WSSS_SHARD``, else the whole (``Shard(0, 1)``).  Both at once is an error."""
    env = parse_shard(os.environ.get(SHARD_ENV, ''))
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        if env.split:
            raise ValueError(f'{SHARD_ENV} is set ({os.environ[SHARD_ENV]}) in a torch.distributed '
                             f'run: the ranks already split the work; unset {SHARD_ENV}')
        world = dist.get_world_size()
        return Shard(dist.get_rank(), world, 'torch.distributed' if world > 1 else 'none')
    return env


def shard(items: Iterable, which: Shard = None) -> list:
    """This process's part of ``items`` (the current shard unless ``which`` is given)."""
    return (which or current_shard()).take(items)


def is_sharded_stage(stage) -> bool:
    """Whether ``stage`` splits its items across shards: a ``PerImageStage`` with
    ``sharded = True``.  Any other stage that says ``sharded = True`` (the contract before
    the base existed) is refused with a StageError: the base now does the split."""
    from .per_image import PerImageStage
    from .stage import StageError
    if isinstance(stage, PerImageStage):
        return bool(stage.sharded)
    if getattr(stage, 'sharded', False):
        raise StageError(f"stage '{stage.name}' ({type(stage).__name__}) sets sharded = True but "
                         'is not a PerImageStage (wsss_core.pipeline.per_image): build it on '
                         'that base, which splits the items across shards and merges them')
    return False


def sum_counts(records: Sequence[dict]) -> Dict[str, object]:
    """The shards' ``counts`` merged: numbers summed, anything else from the first record."""
    total: Dict[str, object] = {}
    for rec in records:
        for key, value in (rec.get('counts') or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value
            else:
                total.setdefault(key, value)
    return total


def shard_record_path(stage_dir, which: Shard) -> Path:
    return Path(stage_dir) / SHARDS_DIR / f'{which.tag}.json'


def read_shard_records(stage_dir, count: int, config_hash: str) -> List[dict]:
    """The records of shards ``0..count-1`` with ``config_hash``, or [] while any is missing."""
    from ..io import read_json
    out = []
    for index in range(count):
        path = shard_record_path(stage_dir, Shard(index, count))
        try:
            rec = read_json(path)
        except (OSError, ValueError):
            return []
        if rec.get('config_hash') != config_hash:
            return []
        out.append(rec)
    return out


@contextlib.contextmanager
def shard_lock(path):
    """A blocking exclusive ``flock`` on ``path`` (created if needed), for the short steps
    independent shards must not interleave (preparing a stage dir, merging the records)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'a+') as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
