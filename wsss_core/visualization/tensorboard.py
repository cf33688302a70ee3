"""mmengine visualizer backends: local JSON always, TensorBoard when it is installed.

A training stage passes :func:`default_visualizer` (or builds its own dict around
:func:`default_vis_backends`) to the mmengine ``Runner``::

    Runner(..., visualizer=default_visualizer())

``LocalVisBackend`` writes ``<log_dir>/vis_data/scalars.json`` (losses, learning rate and
validation metrics, one JSON object a line; the HTML report plots it). ``TensorboardVisBackend``
writes event files to the same ``vis_data`` folder, so ``tensorboard --logdir WORK_DIR`` shows
every training stage. It is added only when the ``tensorboard`` package can be imported:
mmengine's backend imports ``torch.utils.tensorboard`` lazily and would otherwise fail at the
first logged scalar, deep inside training.
"""
from __future__ import annotations

import importlib
from typing import List

__all__ = ['tensorboard_available', 'default_vis_backends', 'default_visualizer']


def tensorboard_available() -> bool:
    """True when ``import tensorboard`` works (what ``torch.utils.tensorboard`` needs)."""
    try:
        importlib.import_module('tensorboard')
    except ImportError:  # also raised for a module blocked with sys.modules[name] = None
        return False
    return True


def default_vis_backends() -> List[dict]:
    """``[LocalVisBackend]``, plus ``TensorboardVisBackend`` when TensorBoard is installed.

    A fresh list of fresh dicts on every call, so a caller may modify it.
    """
    backends = [dict(type='LocalVisBackend')]
    if tensorboard_available():
        backends.append(dict(type='TensorboardVisBackend'))
    return backends


def default_visualizer() -> dict:
    """The ``visualizer=`` config of an mmengine ``Runner`` with :func:`default_vis_backends`.

    ``name`` and ``save_dir`` are left out: the Runner fills in its experiment name and log
    directory.
    """
    return dict(type='Visualizer', vis_backends=default_vis_backends())
