"""The end of every weight conversion: check the result against its model, then write it.

A converted state dict must load into the model it feeds with
``model.load_state_dict(state, strict=True)``: the same keys and, key by key, the same
shapes.  :func:`check_state_dict` compares the two and raises :class:`ConversionError`
naming the first missing keys, unexpected keys and shape mismatches.

BatchNorm's ``num_batches_tracked`` is in no source format (Caffe, MXNet); it is left out
of the comparison and out of the converted dicts.  Loading strictly still succeeds: a dict
without version metadata makes ``nn.BatchNorm2d`` fill the counter with 0 itself.

:func:`model_shapes` builds the expectation from a model; build the model on the ``meta``
device (``with torch.device('meta'): ...``) to check against a full-size network without
allocating its weights.
"""
from __future__ import annotations

import io as _io
from typing import Dict, Mapping, Sequence, Tuple

import torch
import torch.nn as nn

from ...io import DataFileError, atomic_write

__all__ = ['ConversionError', 'COUNTER_SUFFIX', 'model_shapes', 'check_state_dict',
           'save_state_dict']

#: BatchNorm's step counter: never converted, never compared
COUNTER_SUFFIX = 'num_batches_tracked'

_SHOWN = 5


class ConversionError(DataFileError):
    """A source file's content does not convert to what its model needs; names the file."""


def model_shapes(model: nn.Module, prefix: str = '') -> Dict[str, Tuple[int, ...]]:
    """``{key: shape}`` of ``model.state_dict()`` without ``num_batches_tracked``.

    ``prefix`` keeps only the keys under it (``'backbone.'``), with the prefix kept.
    """
    return {k: tuple(v.shape) for k, v in model.state_dict().items()
            if k.startswith(prefix) and not k.endswith(COUNTER_SUFFIX)}


def _first(items: Sequence[str]) -> str:
    shown = ', '.join(items[:_SHOWN])
    return shown + (f' ... ({len(items)} in all)' if len(items) > _SHOWN else '')


def check_state_dict(state: Mapping[str, object], expected: Mapping[str, Sequence[int]],
                     what: str, source) -> None:
    """Raise :class:`ConversionError` unless ``state`` has exactly ``expected``'s keys and shapes.

    ``what`` names the model in the message (``'ResNet38(width_mult=1)'``), ``source`` the
    file converted.  ``num_batches_tracked`` keys are ignored on both sides.
    """
    keys = [k for k in state if not k.endswith(COUNTER_SUFFIX)]
    missing = [k for k in expected if k not in state and not k.endswith(COUNTER_SUFFIX)]
    unexpected = [k for k in keys if k not in expected]
    wrong = [f'{k}: converted {tuple(state[k].shape)} vs model {tuple(expected[k])}'
             for k in keys if k in expected and tuple(state[k].shape) != tuple(expected[k])]
    problems = []
    if missing:
        problems.append(f'missing {_first(missing)}')
    if unexpected:
        problems.append(f'unexpected {_first(unexpected)}')
    if wrong:
        problems.append(f'wrong shape {_first(wrong)}')
    if problems:
        raise ConversionError(f'{source}: the converted weights do not fit {what}: '
                              + '; '.join(problems))


def save_state_dict(state: Mapping[str, torch.Tensor], path) -> None:
    """``torch.save`` ``state`` (a plain dict of tensors) to ``path`` atomically.

    The file loads with ``torch.load(path, weights_only=True)``.
    """
    buf = _io.BytesIO()
    torch.save(dict(state), buf)
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())
