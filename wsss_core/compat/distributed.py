"""Not patches: distributed runs on CPU with mmengine's Runner.

mmengine's ``launcher='pytorch'`` calls ``torch.cuda.set_device`` and wraps the model with
``device_ids=[LOCAL_RANK]``, both of which fail without CUDA.  :func:`init_distributed`
initialises the process group itself (gloo on CPU, NCCL on GPU) before the Runner looks, and
:class:`DeviceAwareDDP` (a registered subclass of mmengine's DDP wrapper, named by
:func:`model_wrapper_cfg`) drops ``device_ids`` for a CPU module.

Nothing of mmengine is replaced, so there is no version gate.
"""
from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist
from mmengine.model import MMDistributedDataParallel

from ..registry import MODELS  # noqa: F401  (registries first, so the scope exists)
from mmengine.registry import MODEL_WRAPPERS

__all__ = ['init_distributed', 'shutdown_distributed', 'DeviceAwareDDP', 'model_wrapper_cfg']


def init_distributed(launcher: str, timeout_s: int = 1800) -> bool:
    """Initialise ``torch.distributed`` for ``launcher`` if needed; return True when distributed.

    Uses NCCL when CUDA is available and gloo otherwise (mmengine would pick NCCL and call
    CUDA APIs).  Under Slurm the rank variables are derived from ``SLURM_*``.
    """
    if launcher in (None, 'none'):
        return False
    if dist.is_available() and dist.is_initialized():
        return True
    if launcher == 'slurm':
        _env_from_slurm()
    elif launcher != 'pytorch':
        raise ValueError(f"unknown launcher '{launcher}': use none, pytorch or slurm")
    missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT') if k not in os.environ]
    if missing:
        raise RuntimeError(f"launcher '{launcher}' needs the environment variables {missing}; "
                           'start the run with torchrun (or srun) or use --launcher none')
    use_cuda = torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))
    dist.init_process_group(backend='nccl' if use_cuda else 'gloo',
                            timeout=datetime.timedelta(seconds=timeout_s))
    return True


def shutdown_distributed() -> None:
    """Destroy the default process group if this process made one (end of ``wsss-run``).

    A process that exits with its gloo process group still alive can abort in the C++
    runtime at interpreter shutdown ("terminate called without an active exception", seen on
    a loaded 2-core machine right after a run finished): the group's threads are stopped
    here first.  No collective call, so a rank whose peer died does not wait for it.
    """
    if dist.is_available() and dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:  # noqa: BLE001 - the run's results are written; exiting anyway
            pass


def _env_from_slurm() -> None:
    """Fill torch.distributed's variables from a Slurm allocation (one task per process)."""
    env = os.environ
    env.setdefault('RANK', env.get('SLURM_PROCID', '0'))
    env.setdefault('WORLD_SIZE', env.get('SLURM_NTASKS', '1'))
    env.setdefault('LOCAL_RANK', env.get('SLURM_LOCALID', '0'))
    env.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in env:
        nodelist = env.get('SLURM_STEP_NODELIST', env.get('SLURM_NODELIST', '127.0.0.1'))
        env['MASTER_ADDR'] = nodelist.split(',')[0].split('[')[0]


@MODEL_WRAPPERS.register_module(force=True)
class DeviceAwareDDP(MMDistributedDataParallel):
    """mmengine's DDP wrapper that passes ``device_ids=None`` for a module on CPU."""

    def __init__(self, module, device_ids=None, **kwargs):
        on_cpu = all(p.device.type == 'cpu' for p in module.parameters())
        super().__init__(module=module, device_ids=None if on_cpu else device_ids, **kwargs)


def model_wrapper_cfg(find_unused_parameters: bool = False) -> dict:
    """The ``model_wrapper_cfg`` to hand to the Runner in distributed runs.

    ``find_unused_parameters``: DDP walks each step's graph for parameters that got no
    gradient (needed by a model that runs only part of itself in some steps, e.g. GETAM's
    classification phase, which leaves the decoder out; it costs a graph traversal per step).
    """
    return dict(type='DeviceAwareDDP', broadcast_buffers=False,
                find_unused_parameters=bool(find_unused_parameters))
