"""Work-arounds for mmengine 0.10.7 on current PyTorch, in one place.

1. **Checkpoint resume under ``weights_only``.**  Since PyTorch 2.6 ``torch.load`` defaults
   to ``weights_only=True``; mmengine's checkpoints hold its ``HistoryBuffer`` objects and
   NumPy scalars in the message hub, so ``Runner.resume`` fails.  The context manager
   :func:`allow_mmengine_checkpoints` allow-lists exactly those for the duration of a run
   (no blanket ``weights_only=False``).  Param schedulers must keep plain numbers in their
   state (mmengine's ``OneCycleLR`` keeps a bound method; the core uses warm-up + cosine).
2. **Distributed runs on CPU.**  mmengine's ``launcher='pytorch'`` calls
   ``torch.cuda.set_device`` and wraps the model with ``device_ids=[LOCAL_RANK]``, both of
   which fail without CUDA.  :func:`init_distributed` initialises the process group itself
   (gloo on CPU, NCCL on GPU) before the Runner looks, and :class:`DeviceAwareDDP` drops
   ``device_ids`` for a CPU module.
3. **mmengine's console output during a stage.**  Every ``MMLogger`` (one per Runner) gets
   its own console handler when it is made, inside ``Runner.__init__``, which logs the
   environment dump and the hook table right away; no Runner argument sends them to a file
   only.  :func:`route_mmengine_logs` wraps ``MMLogger.__init__`` (mmengine 0.10 only, the
   version it was checked on: :data:`MMLOGGER_ROUTING_VERSIONS`) so that each new logger is
   adopted by :func:`wsss_core.console.adopt_mmengine_logger`: quiet console while a stage
   runs, records relayed to the stage's log file.  Other versions keep mmengine's console
   output (a debug line says so).

The mmengine patches are gathering in this package, each behind a version check
(:func:`.versions.checked_on`): it applies on the mmengine versions it was checked on, and
otherwise logs a debug line and leaves mmengine's behaviour.
"""
from __future__ import annotations

import contextlib
import datetime
import os

import numpy as np
import torch
import torch.distributed as dist
from mmengine.model import MMDistributedDataParallel

from ..registry import MODELS  # noqa: F401  (registries first, so the scope exists)
from mmengine.registry import MODEL_WRAPPERS

def _numpy_safe_globals() -> list:
    """NumPy objects that mmengine's message hub and meta dicts put into checkpoints."""
    out = [np.ndarray, np.dtype]
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    out += [_reconstruct, scalar]
    out += [type(np.dtype(t)) for t in ('float64', 'float32', 'float16', 'int64', 'int32',
                                        'int16', 'int8', 'uint8', 'bool')]
    return out


def mmengine_checkpoint_globals() -> list:
    """The classes and functions found in mmengine checkpoints, beyond tensors and containers.

    ``HistoryBuffer`` pickles its statistics methods through ``getattr``; the weights-only
    unpickler still refuses to *call* anything not allow-listed, so a ``getattr`` result
    can only be stored, not executed.
    """
    from collections import OrderedDict, defaultdict
    from mmengine.logging import HistoryBuffer
    return [HistoryBuffer, OrderedDict, defaultdict, getattr, *_numpy_safe_globals()]


@contextlib.contextmanager
def allow_mmengine_checkpoints():
    """Within the block, ``torch.load(weights_only=True)`` accepts mmengine checkpoints.

    Wrap ``runner.train()`` (where mmengine resumes) in it; outside, torch's defaults hold.
    """
    with torch.serialization.safe_globals(mmengine_checkpoint_globals()):
        yield


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


#: mmengine (major, minor) versions on which :func:`route_mmengine_logs` was checked
MMLOGGER_ROUTING_VERSIONS = ((0, 10),)


def mmengine_version_tuple(version: str = None) -> tuple:
    """``'0.10.7'`` -> ``(0, 10)`` (default: the installed mmengine)."""
    import mmengine
    parts = (version or mmengine.__version__).split('.')
    return tuple(int(''.join(c for c in p if c.isdigit()) or 0) for p in parts[:2])


def route_mmengine_logs(version: str = None) -> bool:
    """Adopt every MMLogger made from now on (and those made already) into the console
    rules of :mod:`wsss_core.console`; True when in place.  Idempotent; on an mmengine
    version outside :data:`MMLOGGER_ROUTING_VERSIONS` nothing is patched (False)."""
    from mmengine.logging import MMLogger

    from .. import console
    if getattr(MMLogger.__init__, '_wsss_routed', False):
        return True
    if mmengine_version_tuple(version) not in MMLOGGER_ROUTING_VERSIONS:
        import logging

        import mmengine
        logging.getLogger('wsss').debug(
            'mmengine %s: its console output is not routed to the stage logs (checked on %s)',
            version or mmengine.__version__, MMLOGGER_ROUTING_VERSIONS)
        return False
    original = MMLogger.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        console.adopt_mmengine_logger(self)

    __init__._wsss_routed = True
    __init__.__wrapped__ = original
    MMLogger.__init__ = __init__
    for instance in list(MMLogger._instance_dict.values()):
        console.adopt_mmengine_logger(instance)
    return True


def model_wrapper_cfg(find_unused_parameters: bool = False) -> dict:
    """The ``model_wrapper_cfg`` to hand to the Runner in distributed runs.

    ``find_unused_parameters``: DDP walks each step's graph for parameters that got no
    gradient (needed by a model that runs only part of itself in some steps, e.g. GETAM's
    classification phase, which leaves the decoder out; it costs a graph traversal per step).
    """
    return dict(type='DeviceAwareDDP', broadcast_buffers=False,
                find_unused_parameters=bool(find_unused_parameters))
