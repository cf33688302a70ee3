"""The ``channels_last`` stage option: a convnet's weights and input batches in NHWC layout.

Channels-last (NHWC) lets cuDNN's tensor-core kernels and oneDNN's CPU convolutions skip
the layout conversions they otherwise do around every convolution; the numbers are those
of the default layout up to float rounding.  A stage with the option set

* converts the model's 4-D parameters and buffers (``model.to(memory_format=
  torch.channels_last)``), and
* switches on its data preprocessor's ``channels_last`` (:class:`~wsss_core.models.
  data_preprocessor.NormalizeImages` and its subclasses), which hands every normalised
  batch to the network as an NHWC tensor.

Every training stage takes it (:class:`~wsss_core.pipeline.stage.TrainingStage`), and so
does TestSegmentor for inference.
"""
from __future__ import annotations

from .stage import StageError

__all__ = ['check_channels_last', 'to_channels_last']


def check_channels_last(name: str, value) -> bool:
    """``value`` as a bool, or a :class:`StageError` naming stage ``name``."""
    if not isinstance(value, bool):
        raise StageError(f'[{name}] channels_last must be True or False, got {value!r}')
    return value


def to_channels_last(model, name: str):
    """Put ``model``'s weights and its input batches in channels-last layout; returns it.

    The model's ``data_preprocessor`` must have a ``channels_last`` switch (the core's
    ``NormalizeImages`` and its subclasses do); otherwise a :class:`StageError` says so.
    """
    import torch

    preprocessor = getattr(model, 'data_preprocessor', None)
    if not hasattr(preprocessor, 'channels_last'):
        raise StageError(
            f'[{name}] channels_last=True needs a data preprocessor with a channels_last '
            f'switch (NormalizeImages or a subclass such as CaffeNormalize); this model has '
            f'{type(preprocessor).__name__}: use one of those, or leave channels_last off')
    preprocessor.channels_last = True
    return model.to(memory_format=torch.channels_last)
