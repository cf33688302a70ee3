"""Patch: an iteration-based train loop's ``dataloader_iterator`` wrapped per instance, so
that something runs right before the first batch after a resume's fast-forward (the exact
resume, :mod:`wsss_core.pipeline.exact_resume`, restores the random generators there).

mmengine's ``IterBasedTrainLoop.run`` resumes at iteration ``n`` by drawing ``n`` batches
from ``self.dataloader_iterator`` and dropping them (loading them draws random numbers),
then trains on the next.  :func:`restore_before_batch` puts an iterator around the loop's
own, which calls ``before_batch()`` once, right before batch number ``skip`` (0-based) is
drawn, and otherwise passes every batch and attribute through:

    batches 0 .. skip-1: the fast-forward;  before_batch();  batch skip, skip+1, ...: training.

Version gate: :data:`FAST_FORWARD_VERSIONS` through :func:`.versions.require_checked` (it
relies on where mmengine's loop fast-forwards; elsewhere the generators could be restored at
the wrong batch and a resumed run would silently draw other augmentations).
"""
from __future__ import annotations

from typing import Callable, Optional

from .versions import require_checked

__all__ = ['FAST_FORWARD_VERSIONS', 'restore_before_batch']

#: mmengine (major, minor) versions on which :func:`restore_before_batch` was checked
FAST_FORWARD_VERSIONS = ((0, 10),)


class _CallBeforeBatch:
    """An iterator over batches that calls ``before_batch()`` once, right before batch
    number ``skip`` (0-based) is drawn."""

    def __init__(self, iterator, skip: int, before_batch: Callable[[], None]):
        self._iterator = iterator
        self._skip = skip
        self._before_batch = before_batch

    def __iter__(self):
        return self

    def __next__(self):
        if self._skip == 0 and self._before_batch is not None:
            self._before_batch()
            self._before_batch = None
        self._skip -= 1
        return next(self._iterator)

    def __getattr__(self, name):
        return getattr(self._iterator, name)


def restore_before_batch(loop, skip: int, before_batch: Callable[[], None],
                         version: Optional[str] = None) -> None:
    """Have ``loop`` (mmengine's ``IterBasedTrainLoop``) call ``before_batch()`` right
    before it draws batch number ``skip``: after its fast-forward through the ``skip``
    batches a resumed run already trained on."""
    require_checked('the fast-forward hook (IterBasedTrainLoop.dataloader_iterator)',
                    FAST_FORWARD_VERSIONS, 'an exact resume of an iteration-based run (the '
                    'random generators restored right after the fast-forward)',
                    'wsss_core.compat.train_loop.FAST_FORWARD_VERSIONS', version)
    loop.dataloader_iterator = _CallBeforeBatch(loop.dataloader_iterator, skip, before_batch)
