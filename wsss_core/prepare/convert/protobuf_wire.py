"""A small reader of the protocol buffers wire format (no protobuf runtime needed).

A serialised message is a sequence of fields, each ``key value`` with
``key = (field_number << 3) | wire_type`` written as a varint:

==========  ===============  ================================================================
wire type   name             value
==========  ===============  ================================================================
0           varint           base-128 little-endian groups of 7 bits, the high bit set on
                             every byte but the last (int32/int64/uint64/bool/enum);
                             a negative int64 is its two's complement as an unsigned 64-bit
                             number (10 bytes)
1           64-bit           8 bytes little-endian (double, fixed64)
2           length-delimited a varint length, then that many bytes: strings, bytes, nested
                             messages and *packed* repeated scalars (the values back to back:
                             floats 4 bytes each, doubles 8, integers as varints)
5           32-bit           4 bytes little-endian (float, fixed32)
==========  ===============  ================================================================

Wire types 3 and 4 (groups, deprecated) are refused.  A repeated scalar may arrive packed
(one type-2 field) or unpacked (one field per value), even mixed: the decoders here accept
both.  Fields not asked for are skipped, as every protobuf parser does.
"""
from __future__ import annotations

from typing import Dict, Iterator, List, Tuple, Union

import numpy as np

__all__ = ['WireFormatError', 'VARINT', 'FIXED64', 'LENGTH_DELIMITED', 'FIXED32',
           'read_varint', 'iter_fields', 'fields_by_number', 'as_int64', 'decode_string',
           'decode_floats', 'decode_doubles', 'decode_varints', 'decode_float']

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5
_FIXED_SIZE = {FIXED64: 8, FIXED32: 4}

FieldValue = Union[int, memoryview]
Field = Tuple[int, FieldValue]          # (wire type, value)


class WireFormatError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def read_varint(buf: memoryview, pos: int) -> Tuple[int, int]:
    """``(value, position after it)`` of the varint at ``pos``."""
    value, shift = 0, 0
    end = len(buf)
    while True:
        if pos >= end:
            raise WireFormatError('truncated varint')
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise WireFormatError('varint longer than 10 bytes')


def iter_fields(buf) -> Iterator[Tuple[int, int, FieldValue]]:
    """``(field number, wire type, value)`` for each field of one message, in order.

    The value is an ``int`` for varints and a ``memoryview`` of the payload otherwise
    (no copy).
    """
    buf = memoryview(buf).cast('B')
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireFormatError(f'field number 0 at byte {pos}')
        if wire == VARINT:
            value, pos = read_varint(buf, pos)
        elif wire == LENGTH_DELIMITED:
            size, pos = read_varint(buf, pos)
            if pos + size > end:
                raise WireFormatError(f'field {number}: {size} bytes announced, '
                                      f'{end - pos} left')
            value, pos = buf[pos:pos + size], pos + size
        elif wire in _FIXED_SIZE:
            size = _FIXED_SIZE[wire]
            if pos + size > end:
                raise WireFormatError(f'field {number}: truncated {size * 8}-bit value')
            value, pos = buf[pos:pos + size], pos + size
        else:
            raise WireFormatError(f'field {number}: unsupported wire type {wire}')
        yield number, wire, value


def fields_by_number(buf) -> Dict[int, List[Field]]:
    """All fields of one message grouped by number: ``{number: [(wire type, value), ...]}``."""
    out: Dict[int, List[Field]] = {}
    for number, wire, value in iter_fields(buf):
        out.setdefault(number, []).append((wire, value))
    return out


def as_int64(value: int) -> int:
    """A varint read as a signed 64-bit integer (two's complement)."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _expect(fields: List[Field], wires: Tuple[int, ...], what: str) -> None:
    for wire, _ in fields:
        if wire not in wires:
            raise WireFormatError(f'{what}: wire type {wire}, expected one of {wires}')


def decode_string(fields: List[Field], what: str = 'string') -> str:
    """The last occurrence of a ``string`` field (proto2: the last one wins), UTF-8."""
    _expect(fields, (LENGTH_DELIMITED,), what)
    return bytes(fields[-1][1]).decode('utf-8')


def _decode_fixed(fields: List[Field], wire: int, dtype: str, what: str) -> np.ndarray:
    _expect(fields, (LENGTH_DELIMITED, wire), what)
    size = np.dtype(dtype).itemsize
    chunks = []
    for _, payload in fields:
        if len(payload) % size:
            raise WireFormatError(f'{what}: {len(payload)} bytes is not a multiple of {size}')
        chunks.append(np.frombuffer(payload, dtype=dtype))
    if not chunks:
        return np.zeros(0, dtype=dtype)
    return np.concatenate(chunks) if len(chunks) > 1 else chunks[0].copy()


def decode_floats(fields: List[Field], what: str = 'float') -> np.ndarray:
    """A repeated ``float`` (packed or not) as a float32 array (little-endian on disk)."""
    return _decode_fixed(fields, FIXED32, '<f4', what).astype(np.float32, copy=False)


def decode_doubles(fields: List[Field], what: str = 'double') -> np.ndarray:
    """A repeated ``double`` (packed or not) as a float64 array."""
    return _decode_fixed(fields, FIXED64, '<f8', what).astype(np.float64, copy=False)


def decode_float(fields: List[Field], what: str = 'float') -> float:
    """An optional ``float``: its last occurrence."""
    values = decode_floats(fields, what)
    if not values.size:
        raise WireFormatError(f'{what}: no value')
    return float(values[-1])


def decode_varints(fields: List[Field], signed: bool = True, what: str = 'int') -> List[int]:
    """A repeated integer field (packed or not); ``signed``: read as int64."""
    _expect(fields, (VARINT, LENGTH_DELIMITED), what)
    values: List[int] = []
    for wire, payload in fields:
        if wire == VARINT:
            values.append(payload)
            continue
        pos = 0
        while pos < len(payload):
            value, pos = read_varint(payload, pos)
            values.append(value)
    return [as_int64(v) for v in values] if signed else values
