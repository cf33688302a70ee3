"""The .caffemodel reader: files encoded by protobuf from the caffe.proto definitions."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip('google.protobuf')

from wsss_core.io import DataFileError  # noqa: E402
from wsss_core.prepare.convert import protobuf_wire as wire  # noqa: E402
from wsss_core.prepare.convert.caffe import (CaffeLayer, batch_norm_statistics,  # noqa: E402
                                             caffe_blobs, parse_blob, read_caffemodel)
from wsss_core.testing.caffe_proto import (make_blob, make_layer, make_v1_layer,  # noqa: E402
                                           write_caffemodel)


def test_varints_and_int64_follow_the_wire_rules():
    # 300 = 0b10_0101100: low group 0101100 with the continuation bit, then 10
    assert wire.read_varint(memoryview(bytes([0xAC, 0x02])), 0) == (300, 2)
    minus_one = bytes([0xFF] * 9 + [0x01])            # int64 -1: ten bytes
    value, end = wire.read_varint(memoryview(minus_one), 0)
    assert (wire.as_int64(value), end) == (-1, 10)
    with pytest.raises(wire.WireFormatError):
        wire.read_varint(memoryview(bytes([0x80])), 0)


def test_unpacked_and_packed_floats_are_both_read():
    # field 5, wire type 5 (key 0x2D) twice, then field 5 packed (key 0x2A) with two floats
    one, two = np.float32(1.5).tobytes(), np.float32(-2.0).tobytes()
    packed = np.array([3.0, 4.25], '<f4').tobytes()
    data = b'\x2d' + one + b'\x2d' + two + b'\x2a' + bytes([len(packed)]) + packed
    fields = wire.fields_by_number(data)
    assert wire.decode_floats(fields[5]).tolist() == [1.5, -2.0, 3.0, 4.25]


def test_layers_names_types_and_blobs_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    bias = np.array([0.5, -1.0, 2.0, 0.0], np.float32)
    mean = np.array([2.0, 4.0, 6.0, 8.0], np.float32)
    path = tmp_path / 'net.caffemodel'
    write_caffemodel(path, layers=[
        make_layer('data', 'Input'),
        make_layer('conv1', 'Convolution', [weight, bias]),
        make_layer('bn_conv1', 'BatchNorm', [mean, mean * 3, np.array([2.0], np.float32)]),
        make_layer('bn_eps', 'BatchNorm', [mean, mean, np.array([1.0], np.float32)], eps=1e-3),
        make_layer('conv1_relu', 'ReLU'),
    ])
    layers = read_caffemodel(path)
    assert [(la.name, la.type) for la in layers] == [
        ('data', 'Input'), ('conv1', 'Convolution'), ('bn_conv1', 'BatchNorm'),
        ('bn_eps', 'BatchNorm'), ('conv1_relu', 'ReLU')]
    conv = layers[1]
    assert conv.blobs[0].shape == (4, 3, 3, 3) and conv.blobs[0].dtype == np.float32
    np.testing.assert_array_equal(conv.blobs[0], weight)
    np.testing.assert_array_equal(conv.blobs[1], bias)
    assert layers[0].blobs == () and conv.batch_norm_eps is None
    assert layers[2].batch_norm_eps == pytest.approx(1e-5)        # caffe.proto's default
    assert layers[3].batch_norm_eps == pytest.approx(1e-3)
    blobs = caffe_blobs(path)
    assert sorted(blobs) == ['bn_conv1', 'bn_eps', 'conv1']


def test_legacy_shape_double_data_and_v1_layers(tmp_path):
    weight = np.arange(12, dtype=np.float64).reshape(2, 3, 1, 2) / 8
    bias = np.array([1.0, -3.0])
    path = tmp_path / 'old.caffemodel'
    write_caffemodel(path, v1_layers=[
        make_v1_layer('conv_old', 4, [weight, bias], legacy_shape=True, double=True),
        make_v1_layer('relu_old', 18)])
    conv, relu = read_caffemodel(path)
    assert (conv.name, conv.type, relu.type) == ('conv_old', 'Convolution', 'V1:18')
    assert conv.blobs[0].dtype == np.float64 and conv.blobs[0].shape == (2, 3, 1, 2)
    np.testing.assert_array_equal(conv.blobs[0], weight)
    assert conv.blobs[1].shape == (1, 1, 1, 2)                   # legacy: num, channels, h, w
    np.testing.assert_array_equal(conv.blobs[1].reshape(-1), bias)


def test_blob_without_any_shape_is_one_value_and_a_wrong_count_is_refused():
    scalar = make_blob(np.array([7.0], np.float32))
    scalar.ClearField('shape')
    assert parse_blob(scalar.SerializeToString()).tolist() == 7.0
    bad = make_blob(np.zeros((2, 3), np.float32))
    del bad.data[-1]
    with pytest.raises(wire.WireFormatError, match='5 values for the shape'):
        parse_blob(bad.SerializeToString())


def test_batch_norm_statistics_divide_by_the_scale_factor():
    layer = CaffeLayer('bn', 'BatchNorm', (np.array([4.0, 8.0]), np.array([2.0, 6.0]),
                                            np.array([4.0])))
    mean, var = batch_norm_statistics(layer)
    assert mean.tolist() == [1.0, 2.0] and var.tolist() == [0.5, 1.5]
    zero = CaffeLayer('bn', 'BatchNorm', (np.array([4.0]), np.array([2.0]), np.array([0.0])))
    assert [v.tolist() for v in batch_norm_statistics(zero)] == [[0.0], [0.0]]   # Caffe: 0


def test_damaged_files_name_the_file(tmp_path):
    path = tmp_path / 'net.caffemodel'
    data = write_caffemodel(path, layers=[make_layer('conv1', 'Convolution',
                                                      [np.ones((2, 2), np.float32)])])
    path.write_bytes(data[:-3])
    with pytest.raises(DataFileError, match='net.caffemodel'):
        read_caffemodel(path)
    with pytest.raises(DataFileError, match='not found'):
        read_caffemodel(tmp_path / 'missing.caffemodel')
    dup = tmp_path / 'dup.caffemodel'
    blob = [np.ones(2, np.float32)]
    write_caffemodel(dup, layers=[make_layer('a', 'Scale', blob), make_layer('a', 'Scale', blob)])
    with pytest.raises(DataFileError, match="two layers named 'a'"):
        caffe_blobs(dup)
