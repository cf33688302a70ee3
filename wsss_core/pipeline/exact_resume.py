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
   batch.  Exact for data loaded in the training process (``num_workers=0``, every core
   stage's default); worker processes seed their own generators and start over on resume.
   Under torch.distributed every rank gets the main process's states (the same as its own
   when the ranks share the seed, mmengine's default, and draw alike).
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

from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import Hook

from ..io import atomic_write
from ..registry import HOOKS

__all__ = ['RandomStateHook', 'AtomicLocalBackend', 'ATOMIC_BACKEND', 'CHECKPOINT_KEY',
           'capture_random_state', 'restore_random_state', 'with_random_state',
           'atomic_checkpoints', 'repair_last_checkpoint']

CHECKPOINT_KEY = 'wsss_random_state'
ATOMIC_BACKEND = 'wsss_atomic_local'


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
    """Random generator states into each checkpoint; back out of it when training resumes.

    See the module docstring for what is exact.  A checkpoint without the states (written
    before this hook existed) resumes as before, from re-seeded generators.
    """

    priority = 'VERY_LOW'

    def __init__(self):
        self._pending: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = capture_random_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get(CHECKPOINT_KEY)
        if state is None:
            return
        loop = runner.train_loop
        done = int((checkpoint.get('meta') or {}).get('iter', 0))
        if hasattr(loop, 'dataloader_iterator') and done > 0:
            # iteration-based: after mmengine's fast-forward through `done` batches
            loop.dataloader_iterator = _RestoreBeforeBatch(loop.dataloader_iterator, done,
                                                           state)
        else:
            restore_random_state(state)


class _RestoreBeforeBatch:
    """An iterator over batches that restores the generator states right before batch
    number ``skip`` (0-based), i.e. after the ``skip`` batches of mmengine's fast-forward."""

    def __init__(self, iterator, skip: int, state: dict):
        self._iterator = iterator
        self._skip = skip
        self._state = state

    def __iter__(self):
        return self

    def __next__(self):
        if self._skip == 0 and self._state is not None:
            restore_random_state(self._state)
            self._state = None
        self._skip -= 1
        return next(self._iterator)

    def __getattr__(self, name):
        return getattr(self._iterator, name)


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
    found = [(int(m.group(1)), p) for p in work_dir.glob('*.pth')
             if (m := _CHECKPOINT_NAME.fullmatch(p.name))]
    if not found:
        return None
    newest = max(found)[1]
    with atomic_write(marker, 'w') as fh:
        fh.write(str(newest))
    return newest
