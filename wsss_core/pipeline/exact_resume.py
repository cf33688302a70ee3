"""What makes a resumed training run end with the weights of an uninterrupted one.

mmengine's ``--resume`` restores the weights, the optimiser, the lr schedulers, the message
hub and the data order (its samplers draw the order from ``(seed, epoch)``).  Two things it
leaves out, both fixed here for the core's training stages:

1. **The random generators.**  The augmentations (random flip, crop, rescale, colour
   jitter) and dropout draw from the global generators of torch, NumPy and Python; a resumed
   run re-seeds them, so it would see other crops and flips than the run it continues.
   :class:`RandomStateHook` stores their states in every checkpoint (key
   ``'wsss_random_state'``) and puts them back when training resumes from it.  Then the
   random numbers after the checkpoint are the same as in the uninterrupted run:

       state(resumed run, step t) = state(uninterrupted run, step t)   for every t after
       the checkpoint's step.

   Epoch-based loops get the states back at once (the loop starts the next epoch from
   there); iteration-based loops first fast-forward through the batches already trained on
   (loading them draws random numbers), so the states go back right before the first new
   batch (the patch of the loop's iterator, with its version gate, is
   :mod:`wsss_core.compat.train_loop`).  Exact for data loaded in the training process
   (``num_workers=0``, every core stage's default); worker processes seed their own
   generators and start over on resume.

   Under torch.distributed every rank has generators of its own (the core's training stages
   seed rank ``r`` with ``seed + r``, so the ranks draw different augmentations), but
   mmengine saves checkpoints on rank 0 only (``Runner.save_checkpoint`` is
   ``master_only``).  So the hook gathers the states of all ranks at the moment a checkpoint
   is about to be saved: it runs right before mmengine's CheckpointHook (priority
   :data:`PRIORITY`) in ``after_train_iter`` / ``after_train_epoch`` / ``after_val_epoch``,
   asks that hook whether it saves now (mmengine's own predicates) and only then calls
   ``all_gather_object`` on every rank.  The checkpoint holds

       {'world_size': N, 'ranks': {0: states of rank 0, ..., N-1: states of rank N-1}}

   and on resume rank ``r`` restores ``ranks[r]``.  With another world size (or a checkpoint
   saved without a gather, which holds rank 0's states only) every rank restores rank 0's
   and a warning says the resume is not exact; a checkpoint from before per-rank states (the
   states themselves under the key) gives every rank those, as it always did.
2. **Atomic checkpoint files.**  mmengine writes ``epoch_N.pth`` / ``iter_N.pth`` in place, so
   a run killed while saving leaves a truncated checkpoint.  :func:`atomic_checkpoints`
   points the CheckpointHook at :class:`AtomicLocalBackend`, which writes through
   :func:`wsss_core.io.atomic_write` (temporary file + rename).  mmengine's one-line
   ``last_checkpoint`` is written after the checkpoint, in place: a kill in the instant
   between its truncation and its write would leave it empty, and a kill between a first
   checkpoint and that file leaves none; :func:`repair_last_checkpoint` (called before a
   resume) then points it at the newest complete checkpoint.
"""
from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Optional, Sequence

from mmengine.dist import all_gather_object, get_dist_info
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook, Hook

from ..compat.train_loop import restore_before_batch
from ..io import atomic_write
from ..registry import HOOKS

__all__ = ['RandomStateHook', 'AtomicLocalBackend', 'ATOMIC_BACKEND', 'CHECKPOINT_KEY',
           'PRIORITY', 'capture_random_state', 'restore_random_state', 'with_random_state',
           'atomic_checkpoints', 'repair_last_checkpoint', 'newest_checkpoint']

CHECKPOINT_KEY = 'wsss_random_state'
ATOMIC_BACKEND = 'wsss_atomic_local'
#: right before mmengine's CheckpointHook (VERY_LOW = 90), after every other default hook
PRIORITY = 89


# ----------------------------------------------------------------------------- generators
def capture_random_state() -> dict:
    """The states of torch's CPU (and CUDA) generators, NumPy's global generator and
    Python's ``random``, as tensors and plain numbers (loadable with ``weights_only``)."""
    import numpy as np
    import torch
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state = dict(torch=torch.get_rng_state(),
                 numpy=dict(name=str(name), keys=torch.from_numpy(keys.astype(np.int64)),
                            pos=int(pos), has_gauss=int(has_gauss), cached=float(cached)),
                 python=_python_state_to_plain(random.getstate()))
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_random_state(state: dict) -> None:
    """Put back the generator states of :func:`capture_random_state`."""
    import numpy as np
    import torch
    torch.set_rng_state(state['torch'])
    npy = state['numpy']
    np.random.set_state((npy['name'], npy['keys'].numpy().astype(np.uint32), npy['pos'],
                         npy['has_gauss'], npy['cached']))
    random.setstate(_python_state_from_plain(state['python']))
    cuda = state.get('cuda')
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _python_state_to_plain(state) -> list:
    version, internal, gauss_next = state
    return [int(version), [int(v) for v in internal], gauss_next]


def _python_state_from_plain(state) -> tuple:
    version, internal, gauss_next = state
    return int(version), tuple(int(v) for v in internal), gauss_next


# ----------------------------------------------------------------------------- the hook
@HOOKS.register_module()
class RandomStateHook(Hook):
    """Every rank's random generator states into each checkpoint; each rank's own back out
    of it when training resumes.

    See the module docstring for what is exact.  A checkpoint without the states (written
    before this hook existed) resumes as before, from re-seeded generators.
    """

    priority = PRIORITY

    def __init__(self):
        self._gathered: Optional[dict] = None   # the states of all ranks for the next save

    # ------------------------------------------------------------------ saving
    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if any(_saves_after_train_iter(h, runner) for h in _checkpoint_hooks(runner)):
            self._gather()

    def after_train_epoch(self, runner) -> None:
        if any(_saves_after_train_epoch(h, runner) for h in _checkpoint_hooks(runner)):
            self._gather()

    def after_val_epoch(self, runner, metrics=None) -> None:
        # a best checkpoint: whether it is saved depends on the score, so gather whenever
        # one may be (every rank gets the same metrics)
        if metrics and any(h.save_best for h in _checkpoint_hooks(runner)):
            self._gather()

    def before_train_epoch(self, runner) -> None:
        self._gathered = None       # gathered for a save that did not come

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._gathered = None

    def _gather(self) -> None:
        """The states of every rank, now (a collective call: every rank makes it)."""
        states = all_gather_object(capture_random_state())
        self._gathered = dict(world_size=len(states), ranks=dict(enumerate(states)))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """(Rank 0 only.)  The states gathered right before this save; without a gather (a
        save no CheckpointHook predicate announced) this rank's own states only."""
        stored, self._gathered = self._gathered, None
        if stored is None:
            rank, world = get_dist_info()
            stored = dict(world_size=world, ranks={rank: capture_random_state()})
        checkpoint[CHECKPOINT_KEY] = stored

    # ------------------------------------------------------------------ resuming
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        stored = checkpoint.get(CHECKPOINT_KEY)
        if stored is None:
            return
        state = _states_of_this_rank(stored, runner)
        loop = runner.train_loop
        done = int((checkpoint.get('meta') or {}).get('iter', 0))
        if hasattr(loop, 'dataloader_iterator') and done > 0:
            # iteration-based: after mmengine's fast-forward through `done` batches
            restore_before_batch(loop, done, lambda: restore_random_state(state))
        else:
            restore_random_state(state)


def _checkpoint_hooks(runner) -> list:
    return [h for h in runner.hooks if isinstance(h, CheckpointHook)]


def _saves_after_train_iter(hook: CheckpointHook, runner) -> bool:
    """Whether ``hook.after_train_iter`` saves now (mmengine 0.10.7's condition): by
    iteration, every ``interval`` iterations from ``save_begin``, or the last iteration."""
    return not hook.by_epoch and (
        hook.every_n_train_iters(runner, hook.interval, getattr(hook, 'save_begin', 0))
        or (hook.save_last and hook.is_last_train_iter(runner)))


def _saves_after_train_epoch(hook: CheckpointHook, runner) -> bool:
    """Whether ``hook.after_train_epoch`` saves now: by epoch, every ``interval`` epochs from
    ``save_begin``, or the last epoch."""
    return hook.by_epoch and (
        hook.every_n_epochs(runner, hook.interval, getattr(hook, 'save_begin', 0))
        or (hook.save_last and hook.is_last_train_epoch(runner)))


def _states_of_this_rank(stored: dict, runner) -> dict:
    """This rank's states in a checkpoint's :data:`CHECKPOINT_KEY` entry.

    ``ranks[rank]`` when the checkpoint was saved by a run of this world size; rank 0's
    otherwise (with a warning); the entry itself when it predates per-rank states.
    """
    if 'ranks' not in stored:
        return stored
    rank, world = get_dist_info()
    saved_world, ranks = int(stored['world_size']), stored['ranks']
    if saved_world == world and rank in ranks:
        return ranks[rank]
    if saved_world != world:
        why = (f'the checkpoint was saved by {saved_world} ranks, this run has {world} '
               f'rank{"s" if world != 1 else ""}')
    else:
        why = f'the checkpoint holds no states of rank {rank} (saved without a gather)'
    runner.logger.warning(
        f'RandomStateHook: {why}; rank {rank} resumes from the random generator states of '
        'rank 0, so its augmentations after the resume differ from an uninterrupted run\'s '
        '(resume with the original number of ranks for an exact continuation)')
    return ranks[0]


def with_random_state(custom_hooks: Optional[Sequence] = ()) -> list:
    """``custom_hooks`` (as dicts) plus a :class:`RandomStateHook` unless one is there."""
    hooks = [dict(h) for h in custom_hooks or ()]
    if not any(h.get('type') in ('RandomStateHook', RandomStateHook) for h in hooks):
        hooks.append(dict(type='RandomStateHook'))
    return hooks


# ----------------------------------------------------------------------------- checkpoints
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, with ``put`` / ``put_text`` written atomically."""

    def put(self, obj: bytes, filepath) -> None:
        with atomic_write(filepath) as fh:
            fh.write(obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        with atomic_write(filepath) as fh:
            fh.write(obj.encode(encoding))


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


def atomic_checkpoints(checkpoint_hook: dict) -> dict:
    """A CheckpointHook config that writes its checkpoints through :class:`AtomicLocalBackend`
    (unless the config names a backend of its own, e.g. a remote store)."""
    cfg = dict(checkpoint_hook)
    remote = '://' in str(cfg.get('out_dir') or '')
    if cfg.get('type') in ('CheckpointHook', None) and not remote and \
            not cfg.get('backend_args') and not cfg.get('file_client_args'):
        cfg['backend_args'] = dict(backend=ATOMIC_BACKEND)
    return cfg


_CHECKPOINT_NAME = re.compile(r'(?:epoch|iter)_(\d+)\.pth')


def newest_checkpoint(work_dir) -> Optional[Path]:
    """The ``epoch_N.pth`` / ``iter_N.pth`` with the largest N in ``work_dir`` (None when
    there is none); reads only."""
    found = [(int(m.group(1)), p) for p in Path(work_dir).glob('*.pth')
             if (m := _CHECKPOINT_NAME.fullmatch(p.name))]
    return max(found)[1] if found else None


def repair_last_checkpoint(work_dir) -> Optional[Path]:
    """The checkpoint a resume in ``work_dir`` starts from, or None when there is none.

    mmengine resumes from the file named in ``work_dir/last_checkpoint``.  When that file is
    missing, empty or names no file, it is rewritten (atomically) to name the newest
    ``epoch_N.pth`` / ``iter_N.pth`` in ``work_dir``: complete, since they are written
    through :class:`AtomicLocalBackend`.
    """
    work_dir = Path(work_dir)
    marker = work_dir / 'last_checkpoint'
    try:
        named = marker.read_text().strip()
    except OSError:
        named = ''
    if named and Path(named).is_file():
        return Path(named)
    newest = newest_checkpoint(work_dir)
    if newest is None:
        return None
    with atomic_write(marker, 'w') as fh:
        fh.write(str(newest))
    return newest
