"""The console progress bar of a training stage: iterations, epoch, loss and ETA.

:class:`TrainProgressBar` is an mmengine hook that drives one tqdm bar over the run's
iterations (``train_loop.max_iters``; a resumed run starts at its iteration), with the epoch
(epoch-based loops only) and the loss, averaged over the last ``window`` iterations from the
message hub (``train/loss``, the value mmengine's logger reports), as the bar's postfix; tqdm
gives the rate and the ETA.  Only the main process shows a bar.  Training stages add it
(:func:`with_progress_bar`) unless ``--no-progress`` or ``-v`` (which shows mmengine's
per-iteration lines instead).
"""
from __future__ import annotations

from typing import Optional, Sequence

from mmengine.hooks import Hook

from ..registry import HOOKS


@HOOKS.register_module()
class TrainProgressBar(Hook):
    """One tqdm bar over the training iterations (see the module docstring).

    Args:
        desc: the bar's label, e.g. ``'[classify] train'``.
        window: iterations the shown loss is averaged over.
    """

    priority = 'LOWEST'

    def __init__(self, desc: str = 'train', window: int = 10):
        self.desc = desc
        self.window = int(window)
        self._bar = None

    def before_train(self, runner) -> None:
        from mmengine.dist import is_main_process
        from tqdm import tqdm
        if not is_main_process():
            return
        self._bar = tqdm(total=runner.train_loop.max_iters, initial=runner.iter, desc=self.desc,
                         unit='it', dynamic_ncols=True)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self._bar is None:
            return
        parts = []
        if _by_epoch(runner.train_loop):
            parts.append(f'epoch {runner.epoch + 1}/{runner.train_loop.max_epochs}')
        scalars = runner.message_hub.log_scalars
        if 'train/loss' in scalars:
            parts.append(f"loss {scalars['train/loss'].mean(self.window):.4f}")
        self._bar.set_postfix_str(', '.join(parts), refresh=False)
        self._bar.update(1)

    def after_train(self, runner) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _by_epoch(loop) -> bool:
    """Whether the loop counts epochs: any loop with ``max_epochs`` but mmengine's
    iteration-based one (which reports a nominal single epoch)."""
    from mmengine.runner.loops import IterBasedTrainLoop
    return not isinstance(loop, IterBasedTrainLoop) and bool(getattr(loop, 'max_epochs', None))


def with_progress_bar(custom_hooks: Optional[Sequence], name: str, show: bool) -> list:
    """``custom_hooks`` (as dicts) plus a :class:`TrainProgressBar` labelled ``[name] train``
    when ``show`` (and none is there yet)."""
    hooks = [dict(h) if isinstance(h, dict) else h for h in custom_hooks or ()]
    if show and not any(isinstance(h, dict) and h.get('type') in ('TrainProgressBar',
                                                                   TrainProgressBar)
                        for h in hooks):
        hooks.append(dict(type='TrainProgressBar', desc=f'[{name}] train'))
    return hooks
