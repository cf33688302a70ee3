"""NonFiniteLossGuard: stop training at the first NaN or infinite loss, before it reaches
the weights, naming the stage, the iteration, the loss terms and the batch's images.

Every training Runner the core builds gets one (:func:`with_loss_guard`).  Two checks:

1. *Before the update.*  mmengine's ``train_step`` calls ``optim_wrapper.update_params(loss)``
   (backward, then the optimiser step) before any ``after_train_iter`` hook runs, so a hook
   alone would see a NaN loss only after it was back-propagated into the weights.  The guard
   therefore gates the runner's ``OptimWrapper.update_params`` (the patch, with its version
   gate, is :mod:`wsss_core.compat.optim_wrapper`): a non-finite total loss is not
   back-propagated and not stepped; the weights, the optimiser state and the gradients
   accumulated so far stay as they were.  In a ``torch.distributed`` run the ranks agree
   first (one ``all_reduce`` of a flag per update), so that all of them hold the step back
   together instead of waiting on each other's gradients.
2. *After the iteration* (hook priority ``ABOVE_NORMAL``: before the LoggerHook and the
   CheckpointHook of the same iteration, so no checkpoint of it is written): if a loss term
   of ``outputs`` (keys containing ``loss``) is non-finite or the update was held back,
   ``mode='error'`` raises :class:`NonFiniteLossError`; ``mode='warn'`` logs the same message
   and training goes on without that batch's update.

The training stages set ``mode`` from their option ``nonfinite_loss`` ('error', the default,
or 'warn'; :class:`~wsss_core.pipeline.stage.TrainingStage` parses it).
"""
from __future__ import annotations

import logging
import math
from typing import Dict, List, Optional, Sequence

from mmengine.hooks import Hook

from ..compat.optim_wrapper import gate_update_params, install_update_gate
from ..registry import HOOKS

__all__ = ['NonFiniteLossError', 'NonFiniteLossGuard', 'with_loss_guard', 'nonfinite_terms',
           'batch_image_ids']

MODES = ('error', 'warn')
_MAX_IDS = 64

logger = logging.getLogger('wsss')


class NonFiniteLossError(RuntimeError):
    """A training loss became NaN or infinite; says where and on which images."""


def _is_finite(value) -> bool:
    import torch
    if isinstance(value, torch.Tensor):
        return bool(torch.isfinite(value.detach()).all())
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return True   # not a number: not a loss to judge


def nonfinite_terms(outputs) -> Dict[str, str]:
    """``{name: 'nan' | 'inf' | ...}`` of the loss terms (keys containing 'loss') of a
    train step's ``outputs`` that are NaN or infinite."""
    bad = {}
    for key, value in (outputs or {}).items() if isinstance(outputs, dict) else ():
        if 'loss' in key and not _is_finite(value):
            bad[key] = _describe(value)
    return bad


def _describe(value) -> str:
    import torch
    t = torch.as_tensor(value.detach() if isinstance(value, torch.Tensor) else value).float()
    if t.numel() == 1:
        return str(t.item())
    return f'{int(torch.isnan(t).sum())} NaN, {int(torch.isinf(t).sum())} inf of {t.numel()}'


def batch_image_ids(data_batch) -> List[str]:
    """The image ids in a batch: its ``img_id`` entries (a collated list, per-sample dicts,
    nested dicts such as image pairs) or its data samples' ``img_id`` / ``img_path``."""
    out: List[str] = []

    def visit(node, depth: int) -> None:
        if depth > 4:
            return
        if hasattr(node, 'metainfo'):
            meta = node.metainfo
            if 'img_id' in meta or 'img_path' in meta:
                out.append(str(meta.get('img_id', meta.get('img_path'))))
        elif isinstance(node, dict):
            ids = node.get('img_id')
            if ids is not None:
                out.extend(str(i) for i in (ids if isinstance(ids, (list, tuple)) else [ids]))
            for key, value in node.items():
                if key != 'img_id':
                    visit(value, depth + 1)
        elif isinstance(node, (list, tuple)):
            for item in node:
                visit(item, depth + 1)

    visit(data_batch, 0)
    return out


@HOOKS.register_module()
class NonFiniteLossGuard(Hook):
    """Hold back the update of a non-finite loss, then stop (or warn) naming the batch.

    Args:
        stage: the stage name, for the message.
        mode: 'error' (raise :class:`NonFiniteLossError`) or 'warn' (log, skip the update).
    """

    priority = 'ABOVE_NORMAL'   # after RuntimeInfoHook, before Logger/Checkpoint hooks

    def __init__(self, stage: str = '', mode: str = 'error'):
        if mode not in MODES:
            raise ValueError(f"[{stage}] nonfinite_loss must be one of {MODES}, got {mode!r}")
        self.stage = stage
        self.mode = mode
        self.held_back = 0          # updates held back in the current iteration
        self.skipped_batches = 0    # batches whose update 'warn' skipped, over the run

    # ------------------------------------------------------------------ the update
    def before_train(self, runner) -> None:
        for wrapper in _optim_wrappers(runner.optim_wrapper):
            install_update_gate(wrapper, self, self._guarded)

    def _guarded(self, update_params):
        """``update_params`` run only for a loss finite on every rank; a held-back update is
        counted in :attr:`held_back`."""
        return gate_update_params(update_params, self._all_finite, self._count_held_back)

    def _count_held_back(self) -> None:
        self.held_back += 1

    @staticmethod
    def _all_finite(loss) -> bool:
        """Whether ``loss`` is finite here and, in a distributed run, on every rank."""
        import torch
        import torch.distributed as dist
        finite = torch.isfinite(loss.detach()).all()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            flag = (~finite).to(torch.int32).reshape(1)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            return not bool(flag.item())
        return bool(finite)

    # ------------------------------------------------------------------ the report
    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self.held_back = 0

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        bad = nonfinite_terms(outputs)
        if not bad and not self.held_back:
            return
        message = self.message(runner, batch_idx, data_batch, bad)
        if self.mode == 'error':
            raise NonFiniteLossError(message)
        self.skipped_batches += 1
        runner.logger.warning(message)
        logger.warning(message)

    def message(self, runner, batch_idx: int, data_batch, bad: Dict[str, str]) -> str:
        where = _where(runner, batch_idx)
        ids = batch_image_ids(data_batch)
        shown = ', '.join(ids[:_MAX_IDS]) + (f' ... ({len(ids)} in all)' if len(ids) > _MAX_IDS
                                             else '')
        if bad:
            terms = ', '.join(f'{k} = {v}' for k, v in bad.items())
            what = f'non-finite loss ({terms})'
        else:
            what = 'non-finite loss on another rank (its own error names that batch)'
        head = f'[{self.stage}] {what} at {where}; images of the batch: {shown or "unknown"}.'
        if self.mode == 'warn':
            return head + ' The update of this batch was skipped (nonfinite_loss=warn).'
        return (f'{head} Training stopped before that update reached the weights; no '
                f'checkpoint of this iteration was written{_last_checkpoint(runner)}. Check '
                'those images and the learning rate, then rerun (with --resume to continue '
                'from the last checkpoint), or let the stage skip such batches (its option '
                "nonfinite_loss='warn', or the custom hook dict(type='NonFiniteLossGuard', "
                "mode='warn')).")


def _optim_wrappers(optim_wrapper) -> list:
    """The OptimWrappers of ``optim_wrapper`` (itself, or the members of an OptimWrapperDict)."""
    from mmengine.optim import OptimWrapperDict
    if isinstance(optim_wrapper, OptimWrapperDict):
        return list(optim_wrapper.values())
    return [optim_wrapper] if optim_wrapper is not None else []


def _where(runner, batch_idx: int) -> str:
    """'iteration N (epoch E, batch b of B)' in an epoch-based loop, else 'iteration N'
    (all 1-based, as mmengine's log lines count them)."""
    from mmengine.runner import EpochBasedTrainLoop
    text = f'iteration {runner.iter + 1}'
    loop = getattr(runner, 'train_loop', None)
    if isinstance(loop, EpochBasedTrainLoop):
        try:
            per_epoch = f' of {len(loop.dataloader)}'
        except TypeError:
            per_epoch = ''
        text += f' (epoch {runner.epoch + 1}, batch {batch_idx + 1}{per_epoch})'
    return text


def _last_checkpoint(runner) -> str:
    """', the last checkpoint is <path>' from mmengine's ``last_checkpoint`` file, or ''."""
    from pathlib import Path
    marker = Path(runner.work_dir) / 'last_checkpoint'
    try:
        return f'; the last checkpoint is {marker.read_text().strip()}'
    except OSError:
        return ''


def with_loss_guard(stage: str, custom_hooks: Optional[Sequence] = (),
                    mode: Optional[str] = None) -> list:
    """``custom_hooks`` (as dicts) plus a :class:`NonFiniteLossGuard` for ``stage`` in
    ``mode`` (the stage option ``nonfinite_loss``; None: 'error'); a guard already among
    the hooks is kept as it is (with the stage name filled in)."""
    mode = mode or 'error'
    hooks = [dict(h) for h in custom_hooks or ()]
    mine = [h for h in hooks if h.get('type') in ('NonFiniteLossGuard', NonFiniteLossGuard)]
    if mine:
        for h in mine:
            h.setdefault('stage', stage)
        return hooks
    if mode not in MODES:
        raise ValueError(f"[{stage}] nonfinite_loss must be one of {MODES}, got {mode!r}")
    return hooks + [dict(type='NonFiniteLossGuard', stage=stage, mode=mode)]
