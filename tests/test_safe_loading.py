"""Checkpoints and artifacts load without running pickled code (the trust model in README.md).

Each hostile file below carries a ``__reduce__`` that would create a marker file when
unpickled; each must be refused with a clear error and the marker never appear.  An AST scan
keeps every ``torch.load`` of the core and the plugins at ``weights_only=True`` and every
``np.load`` at ``allow_pickle=False``, and lists the only places that unpickle.
"""
from __future__ import annotations

import ast
import collections
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from wsss_core import compat
from wsss_core.datasets import label_formats as lf
from wsss_core.io import DataFileError, load_cam
from wsss_core.models.timm_backbone import load_state_dict_file

REPO = Path(__file__).resolve().parents[1]


class MakesMarker:
    """Unpickling this runs ``os.system('touch <marker>')``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


def write_npy(path: Path, obj) -> None:
    """``np.save(path, obj, allow_pickle=True)`` (a 0-d object array wrapping ``obj``)."""
    arr = np.empty((), dtype=object)
    arr[()] = obj
    np.save(path, arr, allow_pickle=True)


# ----------------------------------------------------------------------------- checkpoints
def test_a_checkpoint_with_a_reduce_payload_is_refused(tmp_path):
    marker, path = tmp_path / 'marker', tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}, 'meta': MakesMarker(marker)}, path)
    with pytest.raises(DataFileError, match=r'evil\.pth.*GLOBAL posix\.system'):
        load_state_dict_file(path)
    assert not marker.exists()
    torch.save({'state_dict': {'w': torch.ones(2)}}, tmp_path / 'good.pth')   # control
    assert torch.equal(load_state_dict_file(tmp_path / 'good.pth')['w'], torch.ones(2))


def test_mmengine_resume_admits_its_own_objects_and_nothing_else(tmp_path):
    """Resume loads through mmengine's torch.load (torch's default weights_only=True) inside
    compat's allow-list: a real mmengine checkpoint loads, a hostile one is refused."""
    from mmengine.logging import HistoryBuffer
    from mmengine.runner.checkpoint import _load_checkpoint

    buf = HistoryBuffer()
    buf.update(0.5)
    good = tmp_path / 'epoch_1.pth'
    torch.save(dict(meta=dict(epoch=1, seed=np.int64(3), hub=collections.OrderedDict(
        loss=buf)), state_dict=collections.OrderedDict(w=torch.ones(1))), good)
    with pytest.raises(pickle.UnpicklingError):   # the allow-list is what admits it
        _load_checkpoint(str(good), map_location='cpu')
    with compat.allow_mmengine_checkpoints():
        loaded = _load_checkpoint(str(good), map_location='cpu')
    assert loaded['meta']['hub']['loss'].current() == 0.5
    marker, evil = tmp_path / 'marker', tmp_path / 'evil.pth'
    torch.save(dict(meta=dict(epoch=1, hub=MakesMarker(marker)), state_dict={}), evil)
    with compat.allow_mmengine_checkpoints():
        with pytest.raises(pickle.UnpicklingError, match='system'):
            _load_checkpoint(str(evil), map_location='cpu')
    assert not marker.exists()


# ----------------------------------------------------------------------------- artifacts
def test_a_cam_file_with_an_object_array_is_refused(tmp_path):
    marker, path = tmp_path / 'marker', tmp_path / 'cam.npz'
    np.savez(path, cams=np.array([MakesMarker(marker)], dtype=object),
             class_ids=np.array([0], np.int16))
    with pytest.raises(DataFileError, match=r'cam\.npz.*[Oo]bject arrays cannot be loaded'):
        load_cam(path)
    assert not marker.exists()


def test_a_label_file_asking_for_os_system_is_refused_with_how_to_convert(tmp_path):
    marker, path = tmp_path / 'marker', tmp_path / 'cls_labels.npy'
    write_npy(path, {'2007_000032': MakesMarker(marker)})
    with pytest.raises(DataFileError) as err:
        lf.load_cls_labels_npy(path, 20)
    msg = str(err.value)
    assert str(path) in msg and f'{os.system.__module__}.system is not allowed' in msg
    assert 'allow_pickle=True' in msg and 'save_cls_labels_npy' in msg
    assert not marker.exists()


def test_the_conversion_the_refusal_describes_gives_a_loadable_file(tmp_path):
    """A trusted file with another container (OrderedDict) is refused; converting it as the
    message says (in a trusted session) gives a file that loads with the same labels."""
    vec = np.eye(20, dtype=np.float32)[3]
    path = tmp_path / 'cls_labels.npy'
    write_npy(path, collections.OrderedDict([('2007_000032', vec)]))
    with pytest.raises(DataFileError, match='collections.OrderedDict is not allowed'):
        lf.load_cls_labels_npy(path, 20)
    trusted = np.load(path, allow_pickle=True).item()
    lf.save_cls_labels_npy(tmp_path / 'converted.npy', dict(trusted))
    got = lf.load_cls_labels_npy(tmp_path / 'converted.npy', 20)
    assert list(got) == ['2007_000032'] and np.array_equal(got['2007_000032'], vec)


def test_an_object_array_forged_from_raw_bytes_is_refused(tmp_path):
    """Only NumPy globals pass the label unpickler; NumPy itself refuses to build object
    arrays or scalars from raw bytes (which would forge pointers)."""
    from numpy._core.multiarray import _reconstruct, scalar

    class ForgedArray:
        def __reduce__(self):
            return _reconstruct, (np.ndarray, (0,), b'b'), (1, (1,), np.dtype('O'), False,
                                                            b'A' * 8)

    class ForgedScalar:
        def __reduce__(self):
            return scalar, (np.dtype('O'), b'A' * 8)

    for forged in (ForgedArray(), ForgedScalar()):
        path = tmp_path / 'cls_labels.npy'
        write_npy(path, {'2007_000032': forged})
        with pytest.raises(DataFileError, match=r'cls_labels\.npy'):
            lf.load_cls_labels_npy(path, 20)


# ----------------------------------------------------------------------------- source scan
UNPICKLING_CALLS = {'pickle.load', 'pickle.loads', 'pickle.Unpickler', 'marshal.load',
                    'marshal.loads', 'yaml.load', 'yaml.unsafe_load', 'yaml.full_load',
                    'dill.load', 'dill.loads', 'joblib.load', 'torch.jit.load', 'shelve.open',
                    'eval', 'exec', 'compile'}
#: where unpickling is allowed, and why
ALLOWED_UNPICKLING = {
    # the worker side of RefineLabels(workers=N): bytes its own parent process just pickled
    ('wsss_core/refiners/parallel.py', 'pickle.loads'),
}
ALLOWED_UNPICKLER_SUBCLASSES = {'wsss_core/datasets/label_formats.py'}   # _NumpyOnlyUnpickler


def dotted(node) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    parts.append(node.id if isinstance(node, ast.Name) else '<expr>')   # f().eval is no eval
    return '.'.join(reversed(parts))


def keyword_is(call: ast.Call, name: str, value) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is value
               for k in call.keywords)


def unsafe_loads(source: str, rel: str) -> list:
    """``(rel, line, what)`` for each load that could run pickled code (see the module doc)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            if any(dotted(b) in ('pickle.Unpickler', 'Unpickler') for b in node.bases) and \
                    rel not in ALLOWED_UNPICKLER_SUBCLASSES:
                found.append((rel, node.lineno, f'subclass of pickle.Unpickler {node.name}'))
        if isinstance(node, ast.ImportFrom) and node.module in ('torch', 'numpy', 'pickle') and \
                any(a.name in ('load', 'loads', 'Unpickler') for a in node.names):
            found.append((rel, node.lineno, f'from {node.module} import load (unscannable)'))
        if not isinstance(node, ast.Call):
            continue
        name = dotted(node.func)
        if name.endswith(('torch.load', 'serialization.load', 'load_state_dict_from_url')) \
                and not keyword_is(node, 'weights_only', True):
            found.append((rel, node.lineno, f'{name} without weights_only=True'))
        elif name in ('np.load', 'numpy.load') and not keyword_is(node, 'allow_pickle', False):
            found.append((rel, node.lineno, f'{name} without allow_pickle=False'))
        elif name in UNPICKLING_CALLS and (rel, name) not in ALLOWED_UNPICKLING:
            found.append((rel, node.lineno, name))
    return found


def test_the_scan_flags_unsafe_loads():
    src = ('import torch, numpy as np, pickle\n'
           'torch.load(p)\ntorch.load(p, weights_only=False)\nnp.load(p)\n'
           'np.load(p, allow_pickle=True)\npickle.loads(b)\neval(s)\n'
           'class U(pickle.Unpickler): pass\n'
           'torch.load(p, map_location="cpu", weights_only=True)\n'
           'np.load(p, allow_pickle=False)\nmodel.eval()\n')
    assert sorted(line for _, line, _ in unsafe_loads(src, 'x.py')) == [2, 3, 4, 5, 6, 7, 8]


def test_every_load_in_the_core_and_the_plugins_is_pickle_free():
    roots = [REPO / 'wsss_core', *sorted((REPO / 'plugins').glob('*/wsss_*'))]
    files = [f for root in roots for f in sorted(root.rglob('*.py'))]
    assert len(files) > 100   # the scan really covers the tree
    found = [hit for f in files for hit in unsafe_loads(f.read_text(encoding='utf-8'),
                                                         f.relative_to(REPO).as_posix())]
    assert found == []
    torch_loads = sum(f.read_text(encoding='utf-8').count('torch.load(') for f in files)
    assert torch_loads >= 3   # the weight / model.pth loaders are among the scanned calls

