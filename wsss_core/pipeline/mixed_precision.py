"""Automatic mixed precision for the training stages: one switch, ``amp``, on any of them.

``amp`` is a stage option of every training stage that runs an mmengine Runner:

* ``False`` (default): the configured ``optim_wrapper`` as it is (full fp32, as the papers);
* ``'auto'``: mixed precision when the run's device is CUDA, plain fp32 on CPU, so one config
  serves both (EDAM's configs use it: the reference's collaborative attention needs about
  3 GB of attention scores per pair in fp32);
* ``True``: mixed precision, and an error on a machine without CUDA.

Mixed precision means mmengine's ``AmpOptimWrapper``: the forward runs under
``torch.autocast`` in ``amp_dtype`` (``'bfloat16'`` where the GPU supports it, else
``'float16'`` with dynamic loss scaling) and the weights and optimiser state stay fp32.
"""
from __future__ import annotations

from typing import Optional, Union

from .stage import StageError

AmpSetting = Union[bool, str]
AMP_DTYPES = ('bfloat16', 'float16')


def check_amp(stage: str, amp: AmpSetting, amp_dtype: Optional[str] = None) -> None:
    """Raise :class:`StageError` for an ``amp`` / ``amp_dtype`` value that means nothing."""
    if amp not in (False, True, 'auto'):
        raise StageError(f"[{stage}] amp must be False, True or 'auto', got {amp!r}")
    if amp_dtype is not None and amp_dtype not in AMP_DTYPES:
        raise StageError(f'[{stage}] amp_dtype must be one of {AMP_DTYPES}, got {amp_dtype!r}')


def amp_enabled(stage: str, amp: AmpSetting, device: str) -> bool:
    """Whether a stage with this ``amp`` setting trains in mixed precision on ``device``."""
    on_cuda = str(device).startswith('cuda')
    if amp is True and not on_cuda:
        raise StageError(f"[{stage}] amp=True needs a CUDA device, but this run uses "
                         f"{device!r}; use amp='auto' to train in fp32 where there is no GPU")
    return bool(amp) and on_cuda


def default_amp_dtype() -> str:
    """``'bfloat16'`` where the current CUDA device supports it, else ``'float16'``."""
    import torch
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return 'bfloat16'
    return 'float16'


def mixed_precision_optim_wrapper(stage: str, optim_wrapper: dict, amp: AmpSetting,
                                  device: str, amp_dtype: Optional[str] = None) -> dict:
    """``optim_wrapper`` turned into an ``AmpOptimWrapper`` config when ``amp`` is on here.

    Only the wrapper type changes (and ``dtype``, plus ``loss_scale='dynamic'`` for float16);
    the optimiser, parameter groups and constructor stay.  A wrapper that is already an
    ``AmpOptimWrapper`` is kept as it is.
    """
    check_amp(stage, amp, amp_dtype)
    cfg = dict(optim_wrapper)
    if not amp_enabled(stage, amp, device) or cfg.get('type') == 'AmpOptimWrapper':
        return cfg
    if cfg.get('type', 'OptimWrapper') != 'OptimWrapper':
        raise StageError(f"[{stage}] amp is on, but optim_wrapper type {cfg['type']!r} is "
                         "neither 'OptimWrapper' nor 'AmpOptimWrapper'; set amp=False or give "
                         'an AmpOptimWrapper config yourself')
    dtype = amp_dtype or default_amp_dtype()
    cfg.update(type='AmpOptimWrapper', dtype=dtype)
    if dtype == 'float16':
        cfg.setdefault('loss_scale', 'dynamic')
    return cfg
