"""Test helpers for real distributed runs: ``wsss-run --launcher pytorch`` under
``torchrun --nproc_per_node=N`` (gloo on CPU), and what every rank trained on.

* :func:`run_torchrun` writes a config and runs all of its stages with N ranks;
* :class:`RecordRanks` is a test-only hook: each rank writes ``<stage dir>/ranks/rank<r>.pt``
  (its rank, the model wrapper, seeds, the image ids of every step, chosen batch entries,
  model attributes and the maps published in the train step's outputs per step, and a digest of the parameters before and after training);
  :func:`read_rank_records` loads them;
* :class:`RecordAugmentationSeed` is a test-only pass-through transform: the process that
  loads a sample (a data worker, or the rank itself) appends ``torch.initial_seed()`` to
  ``<out_dir>/rank<RANK>.txt``.

A config uses the two by importing this module (:data:`IMPORT`), which
:func:`run_torchrun` adds to the config's ``custom_imports``.
"""
from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import List, Sequence

import torch
from mmengine.hooks import Hook

from ..registry import HOOKS, TRANSFORMS

__all__ = ['IMPORT', 'RecordAugmentationSeed', 'RecordRanks', 'epoch_ids', 'free_port',
           'parameter_digest', 'read_rank_records', 'run_torchrun']

#: the module a config imports for the test-only hook and transform
IMPORT = 'wsss_core.testing.distributed'
RECORD_DIR = 'ranks'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_torchrun(cfg: dict, tmp_path, nproc: int = 2, timeout: int = 300,
                 name: str = 'torchrun') -> Path:
    """Run every stage of ``cfg`` with ``wsss-run --launcher pytorch`` under torchrun with
    ``nproc`` ranks (one thread each); return the work dir ``tmp_path/<name>``.

    The config is written to ``tmp_path/<name>.py`` with :data:`IMPORT` added to its
    ``custom_imports``.  A failed run raises AssertionError with the end of its output.
    """
    from mmengine.config import Config
    cfg = dict(cfg)
    imports = list((cfg.get('custom_imports') or {}).get('imports', []))
    cfg['custom_imports'] = dict(imports=[*imports, IMPORT], allow_failed_imports=False)
    path, work_dir = Path(tmp_path) / f'{name}.py', Path(tmp_path) / name
    Config(cfg).dump(str(path))
    env = dict(os.environ, OMP_NUM_THREADS='1', MASTER_ADDR='127.0.0.1', HF_HUB_OFFLINE='1')
    env.pop('WSSS_SHARD', None)
    cmd = [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}',
           f'--master_port={free_port()}', '-m', 'wsss_core.cli', str(path),
           '--launcher', 'pytorch', '--work-dir', str(work_dir), '--no-progress']
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, (out.stdout + out.stderr)[-6000:]
    (Path(tmp_path) / f'{name}.log').write_text(out.stdout + out.stderr)
    return work_dir


def parameter_digest(module: torch.nn.Module) -> str:
    """SHA-256 of every parameter's bytes, in name order (buffers excluded: with
    ``broadcast_buffers=False`` BatchNorm statistics stay per rank)."""
    h = hashlib.sha256()
    for name, p in sorted(module.named_parameters()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _detached(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, dict):
        return {k: _detached(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_detached(v) for v in value]
    return value


@HOOKS.register_module(force=True)
class RecordRanks(Hook):
    """Test-only: what this rank trained on (see the module docstring).

    Args:
        batch_keys: entries of each training batch to keep (e.g. ``('labels',)``).
        model_attrs: attributes of the (unwrapped) model to keep after each step (e.g.
            ``('phase',)``).
        step_maps: keep the maps the model published in each step's outputs (under the
            step's key ``'step_maps'``, :mod:`wsss_core.models.step_maps`).
    """

    priority = 'LOW'   # after the stages' own hooks (NORMAL and above) have done their part

    def __init__(self, batch_keys: Sequence[str] = (), model_attrs: Sequence[str] = (),
                 step_maps: bool = False):
        self.batch_keys, self.model_attrs = tuple(batch_keys), tuple(model_attrs)
        self.step_maps = bool(step_maps)
        self.record: dict = {}

    @staticmethod
    def _module(runner):
        return runner.model.module if hasattr(runner.model, 'module') else runner.model

    def before_train(self, runner) -> None:
        import torch.distributed as dist
        from torch.nn.modules.batchnorm import _BatchNorm
        module = self._module(runner)
        self.record = dict(
            rank=dist.get_rank() if dist.is_initialized() else 0,
            world=dist.get_world_size() if dist.is_initialized() else 1,
            wrapper=type(runner.model).__name__, runner_seed=runner.seed,
            find_unused_parameters=getattr(runner.model, 'find_unused_parameters', None),
            norm_layers=sorted({type(m).__name__ for m in module.modules()
                                if isinstance(m, _BatchNorm)}),
            start_digest=parameter_digest(module), steps=[])

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        module = self._module(runner)
        step = dict(epoch=runner.epoch, iter=runner.iter, img_id=list(data_batch['img_id']))
        step.update({k: _detached(data_batch[k]) for k in self.batch_keys})
        step.update({a: _detached(getattr(module, a, None)) for a in self.model_attrs})
        if self.step_maps:
            from ..models.step_maps import step_maps_of
            step['step_maps'] = _detached(step_maps_of(outputs))
        self.record['steps'].append(step)

    def after_train(self, runner) -> None:
        self.record['end_digest'] = parameter_digest(self._module(runner))
        from ..io import atomic_write
        path = Path(runner.work_dir) / RECORD_DIR / f"rank{self.record['rank']}.pt"
        with atomic_write(path) as fh:
            torch.save(self.record, fh)


def read_rank_records(stage_dir, world: int = 2) -> List[dict]:
    """The :class:`RecordRanks` records of a stage, in rank order."""
    return [torch.load(Path(stage_dir) / RECORD_DIR / f'rank{r}.pt', weights_only=True)
            for r in range(world)]


def epoch_ids(record: dict) -> dict:
    """``{epoch: [image ids in training order]}`` of one rank's record."""
    out: dict = {}
    for step in record['steps']:
        out.setdefault(step['epoch'], []).extend(step['img_id'])
    return out


@TRANSFORMS.register_module(force=True)
class RecordAugmentationSeed:
    """Test-only pass-through: append the loading process's ``torch.initial_seed()`` (the
    seed its augmentation draws from) to ``<out_dir>/rank<RANK>.txt``."""

    def __init__(self, out_dir):
        self.out_dir = Path(out_dir)

    def __call__(self, sample: dict) -> dict:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / f"rank{os.environ.get('RANK', '0')}.txt", 'a') as fh:
            fh.write(f'{torch.initial_seed()}\n')
        return sample
