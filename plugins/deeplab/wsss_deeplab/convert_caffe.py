"""DeepLab v2 ResNet-101 ``.caffemodel`` -> this plugin's :class:`~.models.deeplab_v2.DeepLabV2`.

The authors' Caffe models (``init.caffemodel``, COCO-initialised; ``train_iter_20000`` /
``train2_iter_20000.caffemodel``, VOC 2012) are read by the core's wire-format reader
(:func:`wsss_core.prepare.convert.caffe.read_caffemodel`, no Caffe or protobuf needed) and
renamed in two steps, both rules written out here:

1. **Caffe -> deeplab-pytorch** (:func:`caffe_to_deeplab_pytorch`; the names of
   kazuto1011/deeplab-pytorch's converted ``.pth``, what
   :func:`~.models.weights.convert_deeplab_pytorch_keys` already reads):

   ======================================  =========================================
   Caffe layer                             deeplab-pytorch module
   ======================================  =========================================
   ``conv1``                               ``layer1.conv1.conv``
   ``bn_conv1``, ``scale_conv1``           ``layer1.conv1.bn``
   ``res<S><U>_branch<P>``                 ``layer<S>.block<B>.<part>.conv``
   ``bn<S><U>_branch<P>``, ``scale...``    ``layer<S>.block<B>.<part>.bn``
   ``fc1_<tag>_c<i>`` (``fc1_c<i>``)       ``aspp.c<i>`` (the ASPP branches)
   ======================================  =========================================

   with stage ``S`` in 2..5, unit ``U`` = ``a``, ``b``, ``c`` (block 1, 2, 3) or ``b<k>``
   (block k + 1: ``res4b22`` is block 23), and branch ``P`` = ``1`` (``shortcut``), ``2a``
   (``reduce``), ``2b`` (``conv3x3``), ``2c`` (``increase``).  A ``Convolution`` gives
   ``weight`` (and ``bias`` if it has one); a ``BatchNorm`` gives ``running_mean`` and
   ``running_var`` (its blobs divided by the scale factor,
   :func:`~wsss_core.prepare.convert.caffe.batch_norm_statistics`); a ``Scale`` gives
   ``weight`` (gamma) and ``bias`` (beta).  The multi-scale training nets repeat every
   layer for the 0.75 and 0.5 inputs with shared weights (``conv1_res075``,
   ``fc1_voc12_c0_res05``, ...): those copies are skipped.  Other ``fc*`` layers (a
   classifier that is not the 4-branch ASPP) are skipped and reported; any other layer
   with blobs is an error.

2. **deeplab-pytorch -> ours**: :func:`~.models.weights.convert_deeplab_pytorch_keys`
   (``layer<S>.block<B>`` -> ``layer<S-1>.<B-1>``, ``reduce/conv3x3/increase`` ->
   ``conv/bn 1/2/3``, ``shortcut`` -> ``downsample.0/1``, ``aspp.c<i>`` -> ``convs.<i>``),
   prefixed ``backbone.`` / ``decode_head.``.

The result is checked against the model it feeds (keys and shapes, :mod:`wsss_core.prepare.
convert.state_dict`): by default ``DeepLabV2`` with a ResNet-101 backbone and as many
classes as the ASPP has (21 for VOC, 91 for the COCO model), built on the meta device.  A
file without an ASPP head (or with another head) gives the backbone only, checked against
``backbone.*``; the head then keeps its initialisation.  The converted dict loads into
that model with ``load_state_dict(strict=True)`` (frozen BatchNorm has no
``num_batches_tracked``; with ``norm='bn'`` torch fills it).  BatchNorm eps must be the
backbone's 1e-5.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from wsss_core.prepare.convert.caffe import CaffeLayer, batch_norm_statistics, read_caffemodel
from wsss_core.prepare.convert.state_dict import (ConversionError, check_state_dict,
                                                  model_shapes)

from .models.weights import convert_deeplab_pytorch_keys

__all__ = ['caffe_module_name', 'caffe_to_deeplab_pytorch', 'convert_deeplab_caffemodel',
           'BACKBONE_EPS']

logger = logging.getLogger('wsss')

#: the BatchNorm eps of DeepLabResNet (FrozenBatchNorm2d and BatchNorm2d alike)
BACKBONE_EPS = 1e-5

_RE_MSC_COPY = re.compile(r'_res(?:075|05)(?:_|$)')
_RE_STEM = re.compile(r'^(conv1|bn_conv1|scale_conv1)$')
_RE_UNIT = re.compile(r'^(res|bn|scale)([2-5])([a-z])(\d*)_branch(1|2a|2b|2c)$')
_RE_ASPP = re.compile(r'^fc\d*(?:_[A-Za-z0-9]+)*?_c(\d+)$')
_PARTS = {'1': 'shortcut', '2a': 'reduce', '2b': 'conv3x3', '2c': 'increase'}


def caffe_module_name(layer_name: str) -> Optional[str]:
    """The deeplab-pytorch module of a Caffe layer name (step 1 of the module docstring).

    ``None`` for names outside the rule (MSC copies included: check with the caller).
    """
    match = _RE_STEM.match(layer_name)
    if match:
        return 'layer1.conv1.conv' if match.group(1) == 'conv1' else 'layer1.conv1.bn'
    match = _RE_UNIT.match(layer_name)
    if match:
        kind, stage, letter, number, branch = match.groups()
        if number:
            if letter != 'b':
                return None
            block = int(number) + 1
        else:
            block = ord(letter) - ord('a') + 1
        return (f'layer{stage}.block{block}.{_PARTS[branch]}.'
                f"{'conv' if kind == 'res' else 'bn'}")
    match = _RE_ASPP.match(layer_name)
    if match:
        return f'aspp.c{int(match.group(1))}'
    return None


def _flat(blob: np.ndarray) -> np.ndarray:
    return np.asarray(blob, dtype=np.float32).reshape(-1)


def _layer_params(layer: CaffeLayer, module: str, source) -> Dict[str, np.ndarray]:
    kind = layer.type
    if kind == 'BatchNorm':
        if layer.batch_norm_eps is not None and abs(layer.batch_norm_eps - BACKBONE_EPS) > 1e-9:
            raise ConversionError(f'{source}: BatchNorm layer {layer.name} has eps '
                                  f'{layer.batch_norm_eps:g}; the backbone uses {BACKBONE_EPS:g}')
        mean, var = batch_norm_statistics(layer)
        return {f'{module}.running_mean': mean, f'{module}.running_var': var}
    if kind == 'Scale':
        gamma = _flat(layer.blobs[0])
        beta = _flat(layer.blobs[1]) if len(layer.blobs) > 1 else np.zeros_like(gamma)
        return {f'{module}.weight': gamma, f'{module}.bias': beta}
    if kind == 'Convolution':
        out = {f'{module}.weight': np.asarray(layer.blobs[0], dtype=np.float32)}
        if len(layer.blobs) > 1:
            out[f'{module}.bias'] = _flat(layer.blobs[1])
        return out
    raise ConversionError(f'{source}: layer {layer.name} has type {kind!r}; expected '
                          'Convolution, BatchNorm or Scale for this name')


def caffe_to_deeplab_pytorch(layers: Sequence[CaffeLayer], source='caffemodel'
                             ) -> Dict[str, np.ndarray]:
    """Step 1: ``{deeplab-pytorch key: array}`` of a DeepLab v2 ResNet ``.caffemodel``."""
    out: Dict[str, np.ndarray] = {}
    unknown: List[str] = []
    skipped_heads: List[str] = []
    for layer in layers:
        if not layer.blobs or _RE_MSC_COPY.search(layer.name):
            continue
        module = caffe_module_name(layer.name)
        if module is None:
            (skipped_heads if layer.name.startswith('fc') else unknown).append(layer.name)
            continue
        for key, value in _layer_params(layer, module, source).items():
            if key in out:
                raise ConversionError(f'{source}: two layers give {key} (one is {layer.name})')
            out[key] = value
    if unknown:
        raise ConversionError(f'{source}: layers outside the DeepLab v2 ResNet naming: '
                              f'{unknown[:5]}' + (f' ({len(unknown)} in all)'
                                                   if len(unknown) > 5 else ''))
    if skipped_heads:
        logger.warning('%s: skipped %d classifier layer(s) that are not the 4-branch ASPP: %s',
                       source, len(skipped_heads), ', '.join(skipped_heads[:5]))
    return out


def _default_model(num_classes: int) -> nn.Module:
    """The reference DeepLabV2 (ResNet-101, output stride 8) on the meta device; classes
    passed directly, so that no plugin needs to be loaded into the registries."""
    from wsss_core.models.data_preprocessor import NormalizeImages

    from .models.deeplab_v2 import DEFAULT_BACKBONE, DeepLabV2
    from .models.resnet_deeplab import DeepLabResNet
    with torch.device('meta'):
        return DeepLabV2(num_classes=num_classes,
                         backbone=dict(DEFAULT_BACKBONE, type=DeepLabResNet),
                         data_preprocessor=dict(type=NormalizeImages))


def convert_deeplab_caffemodel(path, model: Optional[nn.Module] = None
                               ) -> Dict[str, torch.Tensor]:
    """A DeepLab v2 ResNet ``.caffemodel`` as a state dict of ``DeepLabV2`` (float32 tensors).

    ``model``: the model it must fit (default: ``DeepLabV2`` ResNet-101 with the file's
    class count, on the meta device).  Keys are ``backbone.*`` and, when the file holds the
    4-branch ASPP, ``decode_head.convs.<i>.{weight,bias}``.  Raises
    :class:`~wsss_core.prepare.convert.state_dict.ConversionError` naming the file and the
    first missing, unexpected or mis-shaped keys.
    """
    source = Path(path)
    dp_state = caffe_to_deeplab_pytorch(read_caffemodel(source), source)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in dp_state.items()}
    backbone, head, unknown = convert_deeplab_pytorch_keys(tensors)
    if unknown:   # every step-1 key is one step 2 knows: a mismatch between the two rules
        raise ConversionError(f'{source}: keys without a DeepLabV2 name: {unknown[:5]}')
    state = {f'backbone.{k}': v for k, v in backbone.items()}
    state.update({f'decode_head.{k}': v for k, v in head.items()})
    if model is None:
        biases = [v for k, v in head.items() if k.endswith('.bias')]
        model = _default_model(int(biases[0].shape[0]) if biases else 21)
    prefix = '' if head else 'backbone.'
    what = f'{type(model).__name__}' + ('' if head else ' backbone (the file has no ASPP head)')
    check_state_dict(state, model_shapes(model, prefix), what, source)
    return state
