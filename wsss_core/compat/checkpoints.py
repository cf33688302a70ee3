"""Not a patch: ``torch.load(weights_only=True)`` allow-listed for mmengine checkpoints.

Since PyTorch 2.6 ``torch.load`` defaults to ``weights_only=True``; mmengine's checkpoints
hold its ``HistoryBuffer`` objects and NumPy scalars in the message hub, so
``Runner.resume`` fails.  The context manager :func:`allow_mmengine_checkpoints`
allow-lists exactly those for the duration of a run (no blanket ``weights_only=False``).
Param schedulers must keep plain numbers in their state (mmengine's ``OneCycleLR`` keeps a
bound method; the core uses warm-up + cosine).

Nothing of mmengine is replaced, so there is no version gate: a checkpoint holding anything
else is refused by torch with its own message.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

__all__ = ['mmengine_checkpoint_globals', 'allow_mmengine_checkpoints']


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
