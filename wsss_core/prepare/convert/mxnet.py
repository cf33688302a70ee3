"""Read an MXNet ``.params`` file (no MXNet), and psa's ResNet-38 weights -> :class:`ResNet38`.

**The file** (what ``mx.nd.save`` / ``save_checkpoint`` write; all little-endian)::

    uint64 0x112                      list magic (kMXAPINDArrayListMagic)
    uint64 0                          reserved
    uint64 N, then N NDArrays
    uint64 K, then K names, each uint64 length + UTF-8 bytes (K = N, or 0 for a plain list)

**One NDArray**, by its leading uint32:

* ``0xF993FAC9`` (v2) / ``0xF993FACA`` (v3, NumPy shape semantics): int32 storage type
  (0 dense; the sparse types are refused), shape = uint32 ndim + ndim int64 dims, then
  context, type flag, data;
* ``0xF993FAC8`` (v1): shape = uint32 ndim + ndim int64 dims, context, type flag, data;
* anything else (files from before v1, such as psa's 2016 ImageNet model): that uint32 *is*
  ndim, followed by ndim uint32 dims, context, type flag, data.

context = int32 device type + int32 device id (ignored: arrays come back on the CPU); type
flag int32: 0 float32, 1 float64, 2 float16, 3 uint8, 4 int32, 5 int8, 6 int64; data =
the values in C order.  An empty shape (ndim 0; v3: ndim -1) is an empty array and nothing
follows it (v3's ndim 0 is a scalar).

**Names**: ``save_checkpoint`` prefixes ``arg:`` (learned parameters) and ``aux:``
(BatchNorm's moving statistics); :func:`read_mxnet_params` keeps the names as stored.

**psa's ResNet-38** (model A1 of itijyou/ademxapp,
``ilsvrc-cls_rna-a1_cls1000_ep-0001.params``) to the names of
:class:`~wsss_core.models.resnet38.ResNet38` (psa's ``resnet38d``), after dropping
``arg:`` / ``aux:`` (:func:`resnet38_name`):

=================================  ================================================
MXNet                              ResNet38
=================================  ================================================
``conv1a_weight``                  ``conv1a.weight``
``res<S>a_<branch>_weight``        ``b<S>.conv_<branch>.weight`` (first unit of stage S)
``res<S>b<k>_<branch>_weight``     ``b<S>_<k>.conv_<branch>.weight`` (k-th further unit)
``bn<S>a_<branch>_<p>``            ``b<S>.bn_<branch>.<p'>`` (``bn<S>b<k>``: ``b<S>_<k>``)
``bn7_<p>``                        ``bn7.<p'>``
``linear1000_*``                   dropped (the ImageNet classifier)
=================================  ================================================

with ``<branch>`` one of ``branch1``, ``branch2a``, ``branch2b1``, ``branch2b2`` and the
BatchNorm parameter ``<p>`` -> ``<p'>``: ``gamma`` -> ``weight``, ``beta`` -> ``bias``,
``moving_mean`` -> ``running_mean``, ``moving_var`` -> ``running_var``.  This is the rule
of psa's own converter.  Any other name is an error, as is a result whose keys or shapes
differ from ``ResNet38(width_mult=...)``'s (:mod:`.state_dict`).
"""
from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ...io import DataFileError
from .state_dict import ConversionError, check_state_dict

__all__ = ['LIST_MAGIC', 'NDARRAY_V1_MAGIC', 'NDARRAY_V2_MAGIC', 'NDARRAY_V3_MAGIC',
           'TYPE_FLAGS', 'read_ndarray_list', 'read_mxnet_params', 'resnet38_name',
           'mxnet_to_resnet38', 'convert_resnet38_params']

LIST_MAGIC = 0x112
NDARRAY_V1_MAGIC = 0xF993FAC8
NDARRAY_V2_MAGIC = 0xF993FAC9
NDARRAY_V3_MAGIC = 0xF993FACA
#: MXNet (mshadow) type flag -> NumPy dtype
TYPE_FLAGS = {0: '<f4', 1: '<f8', 2: '<f2', 3: 'u1', 4: '<i4', 5: 'i1', 6: '<i8'}

_ARG_PREFIXES = ('arg:', 'aux:')
_BN_PARAMS = {'gamma': 'weight', 'beta': 'bias', 'moving_mean': 'running_mean',
              'moving_var': 'running_var'}
_RE_UNIT = re.compile(r'^(res|bn)(\d)(a|b(\d+))_(branch(?:1|2a|2b1|2b2))_(.+)$')
_RE_BN7 = re.compile(r'^bn7_(.+)$')
_DROPPED = ('linear1000_',)


class _Reader:
    """Sequential little-endian reads from a bytes buffer; errors name the file and offset."""

    def __init__(self, data: bytes, source):
        self.data, self.pos, self.source = memoryview(data), 0, source

    def take(self, size: int, what: str) -> memoryview:
        if size < 0 or self.pos + size > len(self.data):
            raise DataFileError(f'{self.source}: truncated at byte {self.pos} (reading {what}, '
                                f'{size} bytes; the file has {len(self.data)})')
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def unpack(self, fmt: str, what: str):
        return struct.unpack('<' + fmt, self.take(struct.calcsize('<' + fmt), what))

    def u32(self, what: str) -> int:
        return self.unpack('I', what)[0]

    def i32(self, what: str) -> int:
        return self.unpack('i', what)[0]

    def u64(self, what: str) -> int:
        return self.unpack('Q', what)[0]


def _read_shape(reader: _Reader, ndim: int, dim_fmt: str, where: str) -> Optional[Tuple]:
    if ndim < 0:
        return None
    if ndim > 32:
        raise DataFileError(f'{reader.source}: {where}: implausible ndim {ndim}')
    return reader.unpack(dim_fmt * ndim, f'{where} shape') if ndim else ()


def _read_ndarray(reader: _Reader, index: int) -> np.ndarray:
    where = f'array {index}'
    magic = reader.u32(f'{where} magic')
    if magic in (NDARRAY_V2_MAGIC, NDARRAY_V3_MAGIC):
        stype = reader.i32(f'{where} storage type')
        if stype != 0:
            raise DataFileError(f'{reader.source}: {where} has sparse storage type {stype}; only '
                                'dense arrays are supported')
        shape = _read_shape(reader, reader.i32(f'{where} ndim'), 'q', where)
        if magic == NDARRAY_V2_MAGIC and shape == ():
            shape = None          # v2: ndim 0 is the empty ("none") array
    elif magic == NDARRAY_V1_MAGIC:
        shape = _read_shape(reader, reader.u32(f'{where} ndim'), 'q', where) or None
    else:                         # legacy: the magic was ndim, dims are uint32
        shape = _read_shape(reader, magic, 'I', where) or None
    if shape is None:
        return np.zeros(0, dtype=np.float32)
    if any(d < 0 for d in shape):
        raise DataFileError(f'{reader.source}: {where} has an unknown dimension in {shape}')
    reader.unpack('ii', f'{where} context')
    flag = reader.i32(f'{where} type flag')
    if flag not in TYPE_FLAGS:
        raise DataFileError(f'{reader.source}: {where} has unsupported type flag {flag} '
                            f'(known: {sorted(TYPE_FLAGS)})')
    dtype = np.dtype(TYPE_FLAGS[flag])
    count = int(np.prod(shape, dtype=np.int64))
    raw = reader.take(count * dtype.itemsize, f'{where} data ({count} x {dtype})')
    return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder('='))


def read_ndarray_list(path) -> Tuple[List[np.ndarray], List[str]]:
    """``(arrays, names)`` of an MXNet NDArray list file (names empty for a plain list)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataFileError(f'MXNet parameter file not found: {path}') from None
    reader = _Reader(data, path)
    magic = reader.u64('list magic')
    if magic != LIST_MAGIC:
        raise DataFileError(f'{path}: not an MXNet NDArray file (starts with {magic:#x}, '
                            f'expected {LIST_MAGIC:#x})')
    reader.u64('reserved')
    arrays = [_read_ndarray(reader, i) for i in range(reader.u64('array count'))]
    names = []
    for i in range(reader.u64('name count')):
        size = reader.u64(f'name {i} length')
        names.append(bytes(reader.take(size, f'name {i}')).decode('utf-8'))
    if names and len(names) != len(arrays):
        raise DataFileError(f'{path}: {len(names)} names for {len(arrays)} arrays')
    if reader.pos != len(data):
        raise DataFileError(f'{path}: {len(data) - reader.pos} bytes after the last name')
    return arrays, names


def read_mxnet_params(path) -> Dict[str, np.ndarray]:
    """``{name: array}`` of a ``.params`` file, names as stored (``arg:...`` / ``aux:...``)."""
    arrays, names = read_ndarray_list(path)
    if not names and arrays:
        raise DataFileError(f'{path}: the arrays have no names (a plain NDArray list, not '
                            'model parameters)')
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise DataFileError(f'{path}: names stored twice: {dup[:5]}')
    return dict(zip(names, arrays))


# ----------------------------------------------------------------------------- ResNet-38
def resnet38_name(mxnet_name: str) -> Optional[str]:
    """The :class:`ResNet38` key of a psa ResNet-38 MXNet name, ``None`` for dropped ones.

    Raises ``KeyError`` for a name the rule (module docstring) does not cover.
    """
    name = mxnet_name
    for prefix in _ARG_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix):]
    if name.startswith(_DROPPED):
        return None
    if name == 'conv1a_weight':
        return 'conv1a.weight'
    match = _RE_BN7.match(name)
    if match and match.group(1) in _BN_PARAMS:
        return f'bn7.{_BN_PARAMS[match.group(1)]}'
    match = _RE_UNIT.match(name)
    if match:
        kind, stage, unit, k, branch, param = match.groups()
        block = f'b{stage}' if unit == 'a' else f'b{stage}_{int(k)}'
        if kind == 'res' and param == 'weight':
            return f'{block}.conv_{branch}.weight'
        if kind == 'bn' and param in _BN_PARAMS:
            return f'{block}.bn_{branch}.{_BN_PARAMS[param]}'
    raise KeyError(mxnet_name)


def mxnet_to_resnet38(params: Dict[str, np.ndarray], source='params') -> Dict[str, np.ndarray]:
    """Rename psa's MXNet ResNet-38 arrays to :class:`ResNet38` keys (unchecked shapes)."""
    out: Dict[str, np.ndarray] = {}
    unknown = []
    for mx_name, array in params.items():
        try:
            key = resnet38_name(mx_name)
        except KeyError:
            unknown.append(mx_name)
            continue
        if key is None:
            continue
        if key in out:
            raise ConversionError(f'{source}: two arrays map to {key} (one is {mx_name})')
        out[key] = array
    if unknown:
        raise ConversionError(f'{source}: names outside the ResNet-38 (model A1) rule: '
                              f'{unknown[:5]}' + (f' ({len(unknown)} in all)'
                                                   if len(unknown) > 5 else ''))
    return out


def convert_resnet38_params(path, width_mult: float = 1.0):
    """psa's ResNet-38 ``.params`` -> a state dict (float32 tensors) for ``ResNet38``.

    The result is checked against ``ResNet38(width_mult=width_mult)`` (built on the meta
    device: nothing allocated) and loads into it with ``strict=True``; a mismatch raises
    :class:`~.state_dict.ConversionError` naming the file and the first differing keys.
    """
    import torch

    from ...models.resnet38 import ResNet38
    from .state_dict import model_shapes

    renamed = mxnet_to_resnet38(read_mxnet_params(path), path)
    with torch.device('meta'):
        expected = model_shapes(ResNet38(width_mult=width_mult))
    check_state_dict(renamed, expected, f'ResNet38(width_mult={width_mult:g})', path)
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
            for k, v in renamed.items()}
