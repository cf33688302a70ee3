"""Build ``.caffemodel`` files with the protobuf library, for tests of the Caffe readers.

The message classes come from a subset of ``caffe.proto`` declared here as a
``FileDescriptorProto`` (same package ``caffe``, same message names, field numbers, types
and ``packed`` options as the real definitions), so the files are encoded by protobuf's own
serialiser, not by the reader under test:

* ``BlobShape { repeated int64 dim = 1 [packed] }``
* ``BlobProto { shape = 7; repeated float data = 5 [packed]; repeated float diff = 6
  [packed]; repeated double double_data = 8 [packed]; int64 num = 1, channels = 2,
  height = 3, width = 4 }``
* ``BatchNormParameter { bool use_global_stats = 1; float moving_average_fraction = 2;
  float eps = 3 }``
* ``LayerParameter { string name = 1; string type = 2; repeated string bottom = 3, top = 4;
  repeated BlobProto blobs = 7; BatchNormParameter batch_norm_param = 139 }``
* ``V1LayerParameter { repeated string bottom = 2, top = 3; string name = 4;
  LayerType type = 5 (an enum: a varint on the wire, declared int32 here);
  repeated BlobProto blobs = 6 }``
* ``NetParameter { string name = 1; repeated V1LayerParameter layers = 2;
  repeated LayerParameter layer = 100 }``

Needs ``protobuf`` (the ``test`` extra).
"""
from __future__ import annotations

import functools
from typing import Dict, Iterable, Optional, Sequence

import numpy as np

__all__ = ['caffe_message_classes', 'make_blob', 'make_layer', 'make_v1_layer',
           'write_caffemodel']

# (message, [(name, number, label, type, type_name, packed)])
_OPT, _REP = 1, 3
_DOUBLE, _FLOAT, _INT64, _BOOL, _STRING, _MESSAGE, _INT32 = 1, 2, 3, 8, 9, 11, 5
_MESSAGES = (
    ('BlobShape', [('dim', 1, _REP, _INT64, None, True)]),
    ('BlobProto', [('shape', 7, _OPT, _MESSAGE, '.caffe.BlobShape', False),
                   ('data', 5, _REP, _FLOAT, None, True),
                   ('diff', 6, _REP, _FLOAT, None, True),
                   ('double_data', 8, _REP, _DOUBLE, None, True),
                   ('num', 1, _OPT, _INT64, None, False),
                   ('channels', 2, _OPT, _INT64, None, False),
                   ('height', 3, _OPT, _INT64, None, False),
                   ('width', 4, _OPT, _INT64, None, False)]),
    ('BatchNormParameter', [('use_global_stats', 1, _OPT, _BOOL, None, False),
                            ('moving_average_fraction', 2, _OPT, _FLOAT, None, False),
                            ('eps', 3, _OPT, _FLOAT, None, False)]),
    ('LayerParameter', [('name', 1, _OPT, _STRING, None, False),
                        ('type', 2, _OPT, _STRING, None, False),
                        ('bottom', 3, _REP, _STRING, None, False),
                        ('top', 4, _REP, _STRING, None, False),
                        ('blobs', 7, _REP, _MESSAGE, '.caffe.BlobProto', False),
                        ('batch_norm_param', 139, _OPT, _MESSAGE,
                         '.caffe.BatchNormParameter', False)]),
    ('V1LayerParameter', [('bottom', 2, _REP, _STRING, None, False),
                          ('top', 3, _REP, _STRING, None, False),
                          ('name', 4, _OPT, _STRING, None, False),
                          ('type', 5, _OPT, _INT32, None, False),
                          ('blobs', 6, _REP, _MESSAGE, '.caffe.BlobProto', False)]),
    ('NetParameter', [('name', 1, _OPT, _STRING, None, False),
                      ('layers', 2, _REP, _MESSAGE, '.caffe.V1LayerParameter', False),
                      ('layer', 100, _REP, _MESSAGE, '.caffe.LayerParameter', False)]),
)


@functools.lru_cache(maxsize=None)
def caffe_message_classes() -> Dict[str, type]:
    """``{message name: generated class}`` for the ``caffe.proto`` subset above."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    file_proto = descriptor_pb2.FileDescriptorProto(
        name='wsss_test_caffe_subset.proto', package='caffe', syntax='proto2')
    for message_name, fields in _MESSAGES:
        message = file_proto.message_type.add(name=message_name)
        for name, number, label, ftype, type_name, packed in fields:
            field = message.field.add(name=name, number=number, label=label, type=ftype)
            if type_name:
                field.type_name = type_name
            if packed:
                field.options.packed = True
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_proto)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f'caffe.{name}'))
            for name, _ in _MESSAGES}


def make_blob(array, legacy_shape: bool = False, double: bool = False):
    """A ``BlobProto`` holding ``array`` (shape in ``shape``, or legacy num/channels/
    height/width for arrays of up to 4 dims, left-padded with 1s as old Caffe did)."""
    classes = caffe_message_classes()
    array = np.asarray(array)
    blob = classes['BlobProto']()
    if legacy_shape:
        dims = (1,) * (4 - array.ndim) + tuple(array.shape)
        blob.num, blob.channels, blob.height, blob.width = dims
    else:
        blob.shape.dim.extend(int(d) for d in array.shape)
    values = array.reshape(-1).tolist()
    (blob.double_data if double else blob.data).extend(values)
    return blob


def make_layer(name: str, layer_type: str, blobs: Sequence = (),
               eps: Optional[float] = None, **blob_options):
    """A ``LayerParameter`` (``blobs``: arrays; ``eps``: sets ``batch_norm_param.eps``)."""
    layer = caffe_message_classes()['LayerParameter'](name=name, type=layer_type)
    for array in blobs:
        layer.blobs.append(make_blob(array, **blob_options))
    if eps is not None:
        layer.batch_norm_param.eps = eps
    return layer


def make_v1_layer(name: str, type_code: int, blobs: Sequence = (), **blob_options):
    """A ``V1LayerParameter`` (``type_code``: the ``LayerType`` enum value)."""
    layer = caffe_message_classes()['V1LayerParameter'](name=name, type=type_code)
    for array in blobs:
        layer.blobs.append(make_blob(array, **blob_options))
    return layer


def write_caffemodel(path, layers: Iterable = (), v1_layers: Iterable = (),
                     name: str = 'test') -> bytes:
    """Serialise a ``NetParameter`` of these layer messages to ``path``; return the bytes."""
    net = caffe_message_classes()['NetParameter'](name=name)
    net.layer.extend(layers)
    net.layers.extend(v1_layers)
    data = net.SerializeToString()
    with open(path, 'wb') as fh:
        fh.write(data)
    return data

