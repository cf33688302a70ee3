"""Read a Caffe ``.caffemodel``: the layers' names, types and parameter blobs (no Caffe).

A ``.caffemodel`` is one serialised ``caffe.NetParameter`` (``caffe.proto``); read with
:mod:`.protobuf_wire`, only these fields:

``NetParameter``
    ``layer = 100`` (repeated ``LayerParameter``), or in old files ``layers = 2``
    (repeated ``V1LayerParameter``).
``LayerParameter``
    ``name = 1`` (string), ``type = 2`` (string: ``"Convolution"``, ``"BatchNorm"``,
    ``"Scale"``, ...), ``blobs = 7`` (repeated ``BlobProto``),
    ``batch_norm_param = 139`` (``BatchNormParameter``: ``eps = 3``, float, default 1e-5).
``V1LayerParameter``
    ``name = 4``, ``type = 5`` (enum ``LayerType``; 4 = CONVOLUTION, 14 = INNER_PRODUCT,
    39 = DECONVOLUTION are named, others kept as ``'V1:<n>'``), ``blobs = 6``.
``BlobProto``
    ``shape = 7`` (``BlobShape``: ``dim = 1``, packed int64), or the legacy 4-D
    ``num = 1``, ``channels = 2``, ``height = 3``, ``width = 4`` (int64) when ``shape`` is
    absent (no shape at all: one value); ``data = 5`` (packed float) or
    ``double_data = 8`` (packed double).

A blob becomes a NumPy array of its shape (float32, or float64 from ``double_data``); a
blob whose value count differs from its shape's product is an error naming the layer.
Layers without blobs (ReLU, Pooling, ...) are kept with an empty blob list.  What the
blobs mean is the layer type's business: a ``Convolution`` holds ``(weight[, bias])``
(weight ``out x in x kh x kw``, PyTorch's layout), a ``BatchNorm`` ``(mean * s, var * s,
[s])`` (divide by the scale factor ``s``, or take 0 where ``s == 0``, as Caffe does), a
``Scale`` ``(gamma[, beta])``.  :func:`batch_norm_statistics` applies that rule.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ...io import DataFileError
from .protobuf_wire import (WireFormatError, decode_doubles, decode_float, decode_floats,
                            decode_string, decode_varints, fields_by_number)

__all__ = ['CaffeLayer', 'read_caffemodel', 'parse_net_parameter', 'parse_blob',
           'caffe_blobs', 'batch_norm_statistics', 'V1_LAYER_TYPES']

#: V1LayerParameter.LayerType values named here (the rest read as 'V1:<n>')
V1_LAYER_TYPES = {4: 'Convolution', 14: 'InnerProduct', 39: 'Deconvolution'}

_NET_LAYER, _NET_V1_LAYERS = 100, 2
_LAYER_NAME, _LAYER_TYPE, _LAYER_BLOBS, _LAYER_BN_PARAM = 1, 2, 7, 139
_V1_NAME, _V1_TYPE, _V1_BLOBS = 4, 5, 6
_BN_EPS = 3
_BLOB_SHAPE, _BLOB_DATA, _BLOB_DOUBLE_DATA = 7, 5, 8
_BLOB_LEGACY_DIMS = (1, 2, 3, 4)     # num, channels, height, width
_SHAPE_DIM = 1


@dataclasses.dataclass(frozen=True)
class CaffeLayer:
    """One layer of a ``.caffemodel``: ``name``, ``type`` and its ``blobs`` (NumPy arrays).

    ``batch_norm_eps`` is the ``batch_norm_param.eps`` of a ``BatchNorm`` layer (1e-5 when
    not set), ``None`` for other layers.
    """
    name: str
    type: str
    blobs: Tuple[np.ndarray, ...] = ()
    batch_norm_eps: Optional[float] = None


def parse_blob(payload, where: str = 'blob') -> np.ndarray:
    """A serialised ``BlobProto`` as an array of its shape (see the module docstring)."""
    fields = fields_by_number(payload)
    if _BLOB_SHAPE in fields:
        shape_fields = fields_by_number(fields[_BLOB_SHAPE][-1][1])
        shape = tuple(decode_varints(shape_fields.get(_SHAPE_DIM, []), what=f'{where} shape'))
    elif any(n in fields for n in _BLOB_LEGACY_DIMS):
        shape = tuple(decode_varints(fields[n], what=f'{where} legacy shape')[-1]
                      if n in fields else 0 for n in _BLOB_LEGACY_DIMS)
    else:
        shape = ()
    if _BLOB_DOUBLE_DATA in fields and _BLOB_DATA not in fields:
        data = decode_doubles(fields[_BLOB_DOUBLE_DATA], f'{where} double_data')
    else:
        data = decode_floats(fields.get(_BLOB_DATA, []), f'{where} data')
    if any(d < 0 for d in shape):
        raise WireFormatError(f'{where}: negative dimension in shape {shape}')
    count = int(np.prod(shape, dtype=np.int64))   # () -> 1 value, as in Caffe
    if data.size != count:
        raise WireFormatError(f'{where}: {data.size} values for the shape {shape}')
    return data.reshape(shape)


def _parse_layer(payload, v1: bool, index: int) -> CaffeLayer:
    fields = fields_by_number(payload)
    name_no, blobs_no = (_V1_NAME, _V1_BLOBS) if v1 else (_LAYER_NAME, _LAYER_BLOBS)
    name = decode_string(fields[name_no], 'layer name') if name_no in fields else f'#{index}'
    if v1:
        codes = decode_varints(fields.get(_V1_TYPE, []), what=f'layer {name} type')
        layer_type = V1_LAYER_TYPES.get(codes[-1], f'V1:{codes[-1]}') if codes else ''
    else:
        layer_type = (decode_string(fields[_LAYER_TYPE], f'layer {name} type')
                      if _LAYER_TYPE in fields else '')
    blobs = tuple(parse_blob(p, f'layer {name} blob {i}')
                  for i, (_, p) in enumerate(fields.get(blobs_no, [])))
    eps = None
    if layer_type == 'BatchNorm':
        eps = 1e-5
        if _LAYER_BN_PARAM in fields:
            bn = fields_by_number(fields[_LAYER_BN_PARAM][-1][1])
            if _BN_EPS in bn:
                eps = decode_float(bn[_BN_EPS], f'layer {name} batch_norm_param.eps')
    return CaffeLayer(name, layer_type, blobs, eps)


def parse_net_parameter(data, source='caffemodel') -> List[CaffeLayer]:
    """The layers of a serialised ``NetParameter`` (``layer``, then any V1 ``layers``)."""
    try:
        fields = fields_by_number(data)
        layers = [_parse_layer(p, False, i)
                  for i, (_, p) in enumerate(fields.get(_NET_LAYER, []))]
        layers += [_parse_layer(p, True, i)
                   for i, (_, p) in enumerate(fields.get(_NET_V1_LAYERS, []))]
    except (WireFormatError, UnicodeDecodeError) as exc:
        raise DataFileError(f'{source}: not a readable Caffe NetParameter ({exc})') from exc
    if not layers:
        raise DataFileError(f'{source}: no layers (not a .caffemodel?)')
    return layers


def read_caffemodel(path) -> List[CaffeLayer]:
    """Every layer of the ``.caffemodel`` at ``path``, in file order."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataFileError(f'Caffe model not found: {path}') from None
    return parse_net_parameter(data, path)


def caffe_blobs(path) -> Dict[str, List[np.ndarray]]:
    """``{layer name: [blobs]}`` for the layers that hold parameters; a name seen twice with
    blobs is an error (the mapping would be ambiguous)."""
    out: Dict[str, List[np.ndarray]] = {}
    for layer in read_caffemodel(path):
        if not layer.blobs:
            continue
        if layer.name in out:
            raise DataFileError(f'{path}: two layers named {layer.name!r} hold parameters')
        out[layer.name] = list(layer.blobs)
    return out


def batch_norm_statistics(layer: CaffeLayer) -> Tuple[np.ndarray, np.ndarray]:
    """``(mean, var)`` of a Caffe ``BatchNorm`` layer: its blobs divided by the scale factor.

    Caffe keeps running sums ``(sum_mean, sum_var, s)`` and uses ``sum / s``, or 0 when
    ``s == 0``; a layer with only two blobs is taken as already divided.
    """
    if len(layer.blobs) not in (2, 3):
        raise DataFileError(f'BatchNorm layer {layer.name}: {len(layer.blobs)} blobs, expected '
                            '(mean, var, scale factor)')
    mean, var = (np.asarray(b, dtype=np.float64).reshape(-1) for b in layer.blobs[:2])
    if len(layer.blobs) == 3:
        factor = float(np.asarray(layer.blobs[2]).reshape(-1)[0])
        scale = 0.0 if factor == 0 else 1.0 / factor
        mean, var = mean * scale, var * scale
    return mean.astype(np.float32), var.astype(np.float32)
