"""MXNet .params reader and psa's ResNet-38 conversion, on files written in MXNet's format.

The writer below follows MXNet's NDArray list layout (ndarray.cc, Save): uint64 list magic
0x112, uint64 reserved, uint64 count + arrays, uint64 count + (uint64 length + bytes) names;
per array the v2 / v1 / legacy header, the context (int32 device type, int32 id), the int32
type flag and the raw little-endian values.
"""
from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from wsss_core.io import DataFileError
from wsss_core.prepare.convert.mxnet import (convert_resnet38_params, read_mxnet_params,
                                             read_ndarray_list, resnet38_name)
from wsss_core.prepare.convert.state_dict import ConversionError

FLAGS = {np.dtype('float32'): 0, np.dtype('float64'): 1, np.dtype('float16'): 2,
         np.dtype('uint8'): 3, np.dtype('int32'): 4, np.dtype('int8'): 5, np.dtype('int64'): 6}


def ndarray_bytes(array: np.ndarray, version: str = 'v2') -> bytes:
    array = np.ascontiguousarray(array)
    shape = array.shape
    if version == 'v2':
        head = struct.pack('<Ii', 0xF993FAC9, 0) + struct.pack('<I', len(shape))
        head += struct.pack(f'<{len(shape)}q', *shape)
    elif version == 'v1':
        head = struct.pack('<II', 0xF993FAC8, len(shape)) + struct.pack(f'<{len(shape)}q', *shape)
    else:   # legacy: ndim first, uint32 dims
        head = struct.pack('<I', len(shape)) + struct.pack(f'<{len(shape)}I', *shape)
    context = struct.pack('<ii', 1, 0)              # cpu(0)
    flag = struct.pack('<i', FLAGS[array.dtype])
    return head + context + flag + array.astype(array.dtype.newbyteorder('<')).tobytes()


def write_params(path, named: dict, version: str = 'v2') -> None:
    out = struct.pack('<QQ', 0x112, 0) + struct.pack('<Q', len(named))
    out += b''.join(ndarray_bytes(a, version) for a in named.values())
    out += struct.pack('<Q', len(named))
    for name in named:
        raw = name.encode('utf-8')
        out += struct.pack('<Q', len(raw)) + raw
    path.write_bytes(out)


@pytest.mark.parametrize('version', ['v2', 'v1', 'legacy'])
def test_arrays_names_dtypes_and_shapes_round_trip(tmp_path, version):
    named = {'arg:w': np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 7.5,
             'aux:m': np.array([1.0, -2.0], np.float64),
             'arg:h': np.array([[0.5, 2.0]], np.float16),
             'arg:i': np.array([3, -4, 5], np.int32)}
    path = tmp_path / 'x.params'
    write_params(path, named, version)
    params = read_mxnet_params(path)
    assert list(params) == list(named)
    for name, array in named.items():
        assert params[name].dtype == array.dtype and params[name].shape == array.shape
        np.testing.assert_array_equal(params[name], array)


def test_v2_header_is_read_from_hand_written_bytes(tmp_path):
    # one float32 array of shape (2,), named 'a': every field spelled out
    data = (struct.pack('<QQQ', 0x112, 0, 1)
            + struct.pack('<IiI', 0xF993FAC9, 0, 1) + struct.pack('<q', 2)
            + struct.pack('<iii', 2, 3, 0)                       # gpu(3), float32
            + struct.pack('<2f', 1.25, -8.0)
            + struct.pack('<QQ', 1, 1) + b'a')
    path = tmp_path / 'hand.params'
    path.write_bytes(data)
    arrays, names = read_ndarray_list(path)
    assert names == ['a'] and arrays[0].tolist() == [1.25, -8.0]


def test_damaged_or_foreign_files_are_refused(tmp_path):
    path = tmp_path / 'x.params'
    write_params(path, {'arg:w': np.ones(3, np.float32)})
    full = path.read_bytes()
    path.write_bytes(full[:-4])
    with pytest.raises(DataFileError, match='truncated'):
        read_ndarray_list(path)
    path.write_bytes(b'PK\x03\x04' + full[4:])
    with pytest.raises(DataFileError, match='not an MXNet NDArray file'):
        read_ndarray_list(path)
    sparse = struct.pack('<QQQ', 0x112, 0, 1) + struct.pack('<Ii', 0xF993FAC9, 1)
    path.write_bytes(sparse)
    with pytest.raises(DataFileError, match='sparse'):
        read_ndarray_list(path)


# ----------------------------------------------------------------------------- ResNet-38
#: ResNet38 block -> the MXNet unit name of ademxapp's model A1 (written out by hand)
UNITS = {'b2': '2a', 'b2_1': '2b1', 'b2_2': '2b2', 'b3': '3a', 'b3_1': '3b1', 'b3_2': '3b2',
         'b4': '4a', 'b4_1': '4b1', 'b4_2': '4b2', 'b4_3': '4b3', 'b4_4': '4b4', 'b4_5': '4b5',
         'b5': '5a', 'b5_1': '5b1', 'b5_2': '5b2', 'b6': '6a', 'b7': '7a'}
BN_PARAMS = {'weight': ('arg', 'gamma'), 'bias': ('arg', 'beta'),
             'running_mean': ('aux', 'moving_mean'), 'running_var': ('aux', 'moving_var')}


def mxnet_name_of(key: str) -> str:
    """The inverse of the conversion rule, for building a file from a model's keys."""
    if key == 'conv1a.weight':
        return 'arg:conv1a_weight'
    module, param = key.rsplit('.', 1)
    if module == 'bn7':
        kind, suffix = BN_PARAMS[param]
        return f'{kind}:bn7_{suffix}'
    block, layer = module.split('.')
    kind, branch = layer.split('_', 1)             # 'conv', 'branch2a'
    if kind == 'conv':
        return f'arg:res{UNITS[block]}_{branch}_weight'
    prefix, suffix = BN_PARAMS[param]
    return f'{prefix}:bn{UNITS[block]}_{branch}_{suffix}'


def resnet38_file(tmp_path, width_mult=1 / 16, version='legacy', drop=None, extra=None):
    from wsss_core.models.resnet38 import ResNet38
    torch.manual_seed(0)
    source = ResNet38(width_mult=width_mult)
    named = {}
    for key, value in source.state_dict().items():
        if key.endswith('num_batches_tracked') or key == drop:
            continue
        named[mxnet_name_of(key)] = torch.randn(value.shape).numpy()
    named['arg:linear1000_weight'] = np.ones((10, 4), np.float32)   # the ImageNet classifier
    named['arg:linear1000_bias'] = np.zeros(10, np.float32)
    named.update(extra or {})
    path = tmp_path / 'ilsvrc-cls_rna-a1_cls1000_ep-0001.params'
    write_params(path, named, version)
    return path, named


def test_resnet38_names_follow_psa_rule():
    assert resnet38_name('arg:conv1a_weight') == 'conv1a.weight'
    assert resnet38_name('arg:res2a_branch1_weight') == 'b2.conv_branch1.weight'
    assert resnet38_name('arg:res4b5_branch2b1_weight') == 'b4_5.conv_branch2b1.weight'
    assert resnet38_name('aux:bn5b2_branch2a_moving_var') == 'b5_2.bn_branch2a.running_var'
    assert resnet38_name('arg:bn7a_branch2b2_gamma') == 'b7.bn_branch2b2.weight'
    assert resnet38_name('arg:bn7_beta') == 'bn7.bias'
    assert resnet38_name('arg:linear1000_weight') is None
    with pytest.raises(KeyError):
        resnet38_name('arg:fc8_weight')


def test_resnet38_params_convert_and_load_strictly(tmp_path):
    from wsss_core.models.resnet38 import ResNet38
    path, named = resnet38_file(tmp_path)
    state = convert_resnet38_params(path, width_mult=1 / 16)
    model = ResNet38(width_mult=1 / 16)
    model.load_state_dict(state, strict=True)
    loaded = model.state_dict()
    for key in loaded:
        if key.endswith('num_batches_tracked'):
            assert loaded[key].item() == 0
            continue
        expected = torch.from_numpy(named[mxnet_name_of(key)])
        assert torch.equal(loaded[key], expected), key
    assert all(v.dtype == torch.float32 for v in state.values())


def test_resnet38_mismatches_are_named(tmp_path):
    path, _ = resnet38_file(tmp_path, drop='b4_3.bn_branch2b1.running_mean')
    with pytest.raises(ConversionError, match=r'missing b4_3\.bn_branch2b1\.running_mean'):
        convert_resnet38_params(path, width_mult=1 / 16)
    path, _ = resnet38_file(tmp_path)
    with pytest.raises(ConversionError, match=r'wrong shape conv1a\.weight: converted '
                                              r'\(4, 3, 3, 3\) vs model \(8, 3, 3, 3\)'):
        convert_resnet38_params(path, width_mult=1 / 8)
    path, _ = resnet38_file(tmp_path, extra={'arg:fc8_weight': np.zeros(2, np.float32)})
    with pytest.raises(ConversionError, match='fc8_weight'):
        convert_resnet38_params(path, width_mult=1 / 16)
