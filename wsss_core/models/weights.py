"""Loading a local weight file into a backbone whose parameter names it should share.

Used by the backbones that load converted or torchvision/psa-named weights (ResNet38,
TorchvisionResNet): prefixes ``module.`` (DataParallel) and, when only that matches,
``backbone.`` are dropped, keys of other modules (heads, ``fc``) are ignored, and a file that
matches nothing or holds a tensor of the wrong shape is an error naming the file.

A backbone that a :class:`~wsss_core.pipeline.pretrain.Pretrain` stage can pretrain says how
its weight file is written and given back (:func:`pretrained_option`,
:func:`pretrained_state_dict`): by default its own ``state_dict()``, handed back through its
constructor option ``pretrained``; a backbone whose loader reads another option or other
names declares ``pretrained_option`` (e.g. GETAM's ViT: ``checkpoint``) and a
``pretrained_state_dict()`` method (e.g. the inner timm model's state dict).
"""
from __future__ import annotations

import logging
import os
from typing import List

import torch.nn as nn

from ..io import DataFileError
from .timm_backbone import load_state_dict_file

logger = logging.getLogger(__name__)


def strip_prefixes(state: dict, own: dict) -> dict:
    """Drop ``module.`` (DataParallel) prefixes, and ``backbone.`` when only that matches."""
    out = {}
    for k, v in state.items():
        while k.startswith('module.'):
            k = k[len('module.'):]
        out[k] = v
    if not any(k in own for k in out) and any(k.startswith('backbone.') for k in out):
        out = {k[len('backbone.'):]: v for k, v in out.items() if k.startswith('backbone.')}
    return out


def load_matching_weights(module: nn.Module, path, what: str, expected: str,
                          option: str = 'pretrained') -> List[str]:
    """Load the weights of ``path`` that ``module`` has; return the module keys the file lacks.

    ``what`` names the model in messages (``'ResNet38'``), ``expected`` describes the key
    names it wants (``'psa names such as conv1a.weight'``), ``option`` the argument that gave
    ``path`` (named when the file is missing).
    """
    path = os.fspath(path)
    state = load_state_dict_file(path, option)
    if not isinstance(state, dict):
        raise DataFileError(f'{path}: not a state dict ({type(state).__name__})')
    own = module.state_dict()
    state = strip_prefixes(state, own)
    matched = {k: v for k, v in state.items() if k in own}
    if not matched:
        sample = ', '.join(list(state)[:3]) or 'no keys'
        raise DataFileError(f'{path}: matches none of the {what} weights ({expected} '
                            f'expected; the file has {sample}, ...)')
    wrong = [f'{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}'
             for k, v in matched.items() if tuple(v.shape) != tuple(own[k].shape)]
    if wrong:
        raise DataFileError(f'{path}: {len(wrong)} {what} weights have the wrong shape '
                            f'(width?): ' + '; '.join(wrong[:3]))
    module.load_state_dict(matched, strict=False)
    missing = [k for k in own if k not in matched and not k.endswith('num_batches_tracked')]
    if missing:
        logger.warning('%s: %d weights not in %s (left at their init): %s',
                       what, len(missing), path, ', '.join(missing[:5]))
    return missing


def pretrained_option(backbone_cls: type) -> str:
    """The constructor option through which ``backbone_cls`` loads a local weight file."""
    return getattr(backbone_cls, 'pretrained_option', 'pretrained')


def pretrained_state_dict(backbone: nn.Module) -> dict:
    """The state dict of ``backbone`` in the names its :func:`pretrained_option` loads."""
    own = getattr(backbone, 'pretrained_state_dict', None)
    return own() if callable(own) else backbone.state_dict()
