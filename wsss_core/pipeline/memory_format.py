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

**A torch crash it refuses.**  On the CPU, torch's channels-last backward of a 1x1
convolution with stride > 1 and fewer than 16 input channels kills the process with a
segmentation fault (measured with torch 2.14.0: input channels 4, 8 and 12 crash, 16, 17, 20,
24, 28 and 32 do not; stride 1 and 3x3 kernels do not; small inputs such as 2 x 32 x 32 may
pass).  ResNet-38 at 1/8 width has one (its first block's 8-channel shortcut), and a thin
SmallResNet can.  A training stage on the CPU therefore refuses ``channels_last=True`` for
a model holding such a convolution, naming it, before any work
(:func:`crashing_convolutions`); inference has no backward and is not affected.
"""
from __future__ import annotations

from .stage import StageError

__all__ = ['check_channels_last', 'to_channels_last', 'crashing_convolutions']


def check_channels_last(name: str, value) -> bool:
    """``value`` as a bool, or a :class:`StageError` naming stage ``name``."""
    if not isinstance(value, bool):
        raise StageError(f'[{name}] channels_last must be True or False, got {value!r}')
    return value


def crashing_convolutions(model) -> list:
    """Names of ``model``'s convolutions whose channels-last CPU backward crashes torch: 1x1
    kernels with a stride > 1 and fewer than 16 input channels (the module docstring)."""
    import torch.nn as nn
    return [name for name, m in model.named_modules()
            if isinstance(m, nn.Conv2d) and tuple(m.kernel_size) == (1, 1)
            and max(m.stride) > 1 and m.in_channels < 16]


def to_channels_last(model, name: str, training_on: str = None):
    """Put ``model``'s weights and its input batches in channels-last layout; returns it.

    The model's ``data_preprocessor`` must have a ``channels_last`` switch (the core's
    ``NormalizeImages`` and its subclasses do); otherwise a :class:`StageError` says so.
    ``training_on``: the device a training stage runs on; on the CPU a model holding a
    convolution of :func:`crashing_convolutions` is refused (a :class:`StageError` naming it).
    """
    import torch

    if training_on is not None and str(training_on).startswith('cpu'):
        crashing = crashing_convolutions(model)
        if crashing:
            raise StageError(
                f'[{name}] channels_last=True on the CPU: this model has a 1x1 strided '
                f'convolution with fewer than 16 input channels ({crashing[0]}'
                f'{f" and {len(crashing) - 1} more" if len(crashing) > 1 else ""}), whose '
                'channels-last backward crashes torch with a segmentation fault '
                '(docs: wsss_core.pipeline.memory_format); leave channels_last off for it, '
                'or widen the network')

    preprocessor = getattr(model, 'data_preprocessor', None)
    if not hasattr(preprocessor, 'channels_last'):
        raise StageError(
            f'[{name}] channels_last=True needs a data preprocessor with a channels_last '
            f'switch (NormalizeImages or a subclass such as CaffeNormalize); this model has '
            f'{type(preprocessor).__name__}: use one of those, or leave channels_last off')
    preprocessor.channels_last = True
    return model.to(memory_format=torch.channels_last)
