"""What ``bench/gpu_check.py`` learns from inside a training stage: the ``GPUCheckProbe`` hook.

A stage run by the check gets ``dict(type='GPUCheckProbe', ...)`` among its custom hooks.  The
probe writes ``<stage dir>/gpu_check_probe.json`` after every iteration (so a run that fails
half-way still leaves what it saw):

* ``iterations``: the loss terms of each iteration (``outputs`` of the train step), the
  model's ``phase`` where it has one (GETAM) and the time at its end (``t``, after a CUDA
  synchronisation; ``train_started``: the same clock before the first iteration);
* ``optim_wrapper``: its type, the autocast dtype (``cast_dtype``) and the loss scale of an
  ``AmpOptimWrapper`` (mmengine's GradScaler; dynamic loss scaling);
* ``model``: the device and dtype of the parameters, the share of 4-D parameters stored
  channels-last, the BatchNorm classes (``SyncBatchNorm`` after ``sync_bn``), the wrapper
  class (DDP) and the process group's backend (NCCL / gloo);
* ``compared``: at iteration 0 (and at the first iteration whose ``phase`` differs from
  iteration 0's), the loss terms of the same batch computed twice in float32 outside the
  run's autocast, on copies of the model with every dropout off: on the run's device and on
  ``reference_device`` (the CPU).  TF32 is off for the device copy (:func:`exact_fp32`).
  ``autocast``: on a CPU run, the same batch under CPU autocast in each of ``autocast_dtypes``
  (forward and backward), which finds dtype mistakes of the mixed-precision path without a
  GPU.

The copies leave the training run untouched: its model, its random generators and its batch.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import traceback
from pathlib import Path
from typing import Dict, Optional, Sequence

import torch
from mmengine.hooks import Hook

from wsss_core.registry import HOOKS

__all__ = ['PROBE_FILE', 'GPUCheckProbe', 'exact_fp32', 'dropout_off', 'read_probe',
           'loss_terms', 'probe_hook']

PROBE_FILE = 'gpu_check_probe.json'


@contextlib.contextmanager
def exact_fp32():
    """TF32 off for CUDA matmuls and cuDNN convolutions inside the block (cuDNN's default
    is on: float32 convolutions would then round their inputs to 10 mantissa bits)."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul
        torch.backends.cudnn.allow_tf32 = cudnn


def dropout_off(model: torch.nn.Module) -> torch.nn.Module:
    """Every dropout of ``model`` made a no-op, BatchNorm left in training mode: ``p = 0`` on
    ``nn.Dropout*`` (timm's attention reads ``attn_drop.p`` itself), eval mode on stochastic
    depth (``DropPath``), ``attn_dropout = 0`` on modules that keep it as a number (EDAM's
    CMA).  Returns ``model`` (changed in place: use it on a copy)."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd):
            module.p = 0.0
        elif 'DropPath' in type(module).__name__:
            module.eval()
        if isinstance(getattr(module, 'attn_dropout', None), float):
            module.attn_dropout = 0.0
    return model


def loss_terms(model, data_batch, device=None, autocast_dtype: Optional[torch.dtype] = None,
               backward: bool = False) -> Dict[str, float]:
    """The loss terms (mmengine ``parse_losses``' log variables) of ``data_batch`` on a copy
    of ``model`` moved to ``device`` (default: where it is), dropout off, float32 with TF32
    off, or under ``torch.autocast`` in ``autocast_dtype``; ``backward`` also back-propagates
    the total (the autocast probe)."""
    net = dropout_off(copy.deepcopy(model))
    if device is not None:
        net = net.to(device)
    net.train()
    dev = next(net.parameters()).device
    cast = (torch.autocast(dev.type, dtype=autocast_dtype) if autocast_dtype is not None
            else contextlib.nullcontext())
    with exact_fp32(), cast:
        data = net.data_preprocessor(copy.deepcopy(data_batch), True)
        losses = net._run_forward(data, mode='loss')
        total, log_vars = net.parse_losses(losses)
    if backward:
        total.backward()
    out = {k: float(v) for k, v in log_vars.items()}
    del net
    return out


def _unwrap(model):
    return model.module if hasattr(model, 'module') else model


def _clock() -> float:
    """``time.perf_counter()`` once the queued CUDA work has finished."""
    import time
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return time.perf_counter()


def _finite(values: dict) -> bool:
    return all(math.isfinite(v) for v in values.values())


@HOOKS.register_module(force=True)
class GPUCheckProbe(Hook):
    """Record a training stage's losses, precision, layout and fp32 agreement (see module).

    Args:
        compare: compare the device's float32 losses with ``reference_device``'s.
        reference_device: where the reference copy runs (the CPU).
        autocast_dtypes: on a CPU run, also run the batch under CPU autocast in these dtypes
            (names, e.g. ``('bfloat16', 'float16')``).
    """

    priority = 'LOWEST'   # after the hooks that set the iteration's phase and lr

    def __init__(self, compare: bool = True, reference_device: str = 'cpu',
                 autocast_dtypes: Sequence[str] = ()):
        self.compare = bool(compare)
        self.reference_device = reference_device
        self.autocast_dtypes = tuple(autocast_dtypes)
        self.record: dict = dict(iterations=[], compared=[], autocast=[])
        self._first_phase = None
        self._compared_phases = set()

    # ------------------------------------------------------------------ what is recorded
    def before_train(self, runner) -> None:
        import torch.distributed as dist
        self.record['train_started'] = _clock()
        net = _unwrap(runner.model)
        params = list(net.parameters())
        four_d = [p for p in params if p.dim() == 4]
        bn = sorted({type(m).__name__ for m in net.modules() if 'BatchNorm' in type(m).__name__})
        self.record['model'] = dict(
            wrapper=type(runner.model).__name__, device=str(params[0].device),
            dtype=str(params[0].dtype), parameters_4d=len(four_d),
            channels_last_4d=sum(p.is_contiguous(memory_format=torch.channels_last)
                                 for p in four_d),
            nchw_only_4d=sum(not p.is_contiguous(memory_format=torch.channels_last)
                             for p in four_d),
            batch_norm=bn)
        if dist.is_available() and dist.is_initialized():
            self.record['distributed'] = dict(backend=str(dist.get_backend()),
                                              world_size=dist.get_world_size())
        self.record['optim_wrapper'] = self._optim_wrapper(runner)

    @staticmethod
    def _optim_wrapper(runner) -> dict:
        wrapper = runner.optim_wrapper
        out = dict(type=type(wrapper).__name__)
        dtype = getattr(wrapper, 'cast_dtype', None)
        if dtype is not None:
            out['cast_dtype'] = str(dtype).replace('torch.', '')
        scaler = getattr(wrapper, 'loss_scaler', None)
        if scaler is not None and scaler.is_enabled():
            out['loss_scale'] = float(scaler.get_scale())
        return out

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        net = _unwrap(runner.model)
        phase = getattr(net, 'phase', None)
        if runner.iter == 0:
            self._first_phase = phase
        due = runner.iter == 0 or (phase != self._first_phase
                                   and phase not in self._compared_phases)
        if not due or data_batch is None:
            return
        self._compared_phases.add(phase)
        if self.compare:
            self.record['compared'].append(self._compare(net, data_batch, runner.iter, phase))
        if self.autocast_dtypes and next(net.parameters()).device.type == 'cpu':
            for name in self.autocast_dtypes:
                self.record['autocast'].append(self._autocast(net, data_batch, runner.iter,
                                                              phase, name))

    def _compare(self, net, data_batch, it: int, phase) -> dict:
        out = dict(iter=it, phase=phase)
        try:
            out['device'] = loss_terms(net, data_batch)
            out['reference'] = loss_terms(net, data_batch, device=self.reference_device)
        except Exception as exc:  # recorded; the check reports it as a failure
            out['error'] = f'{type(exc).__name__}: {exc}'
            out['traceback'] = traceback.format_exc()
        return out

    @staticmethod
    def _autocast(net, data_batch, it: int, phase, name: str) -> dict:
        out = dict(iter=it, phase=phase, dtype=name)
        try:
            out['losses'] = loss_terms(net, data_batch, autocast_dtype=getattr(torch, name),
                                       backward=True)
            out['finite'] = _finite(out['losses'])
        except Exception as exc:
            out['error'] = f'{type(exc).__name__}: {exc}'
            out['traceback'] = traceback.format_exc()
        return out

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        losses = {k: float(v) for k, v in (outputs or {}).items()
                  if isinstance(v, (torch.Tensor, float, int))}
        net = _unwrap(runner.model)
        self.record['iterations'].append(dict(iter=runner.iter, losses=losses, t=_clock(),
                                              phase=getattr(net, 'phase', None)))
        self.record['optim_wrapper'] = self._optim_wrapper(runner)
        self._write(runner)

    def after_train(self, runner) -> None:
        self._write(runner)

    def _write(self, runner) -> None:
        from mmengine.dist import get_rank
        name = PROBE_FILE if get_rank() == 0 else f'gpu_check_probe.rank{get_rank()}.json'
        Path(runner.work_dir, name).write_text(json.dumps(self.record, indent=1))


def probe_hook(compare: bool = True, autocast_dtypes: Sequence[str] = ()) -> dict:
    """The custom-hook config of a probe."""
    return dict(type='GPUCheckProbe', compare=compare, autocast_dtypes=list(autocast_dtypes))


def read_probe(stage_dir) -> Optional[dict]:
    """The probe's record of the stage in ``stage_dir``, or None when it wrote none."""
    path = Path(stage_dir) / PROBE_FILE
    return json.loads(path.read_text()) if path.is_file() else None
