"""Label files (psa/irn cls_labels.npy, OAA train_cls.txt), image lists and conversions."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from wsss_core.datasets import label_formats as lf
from wsss_core.io import DataFileError

from fixtures.real_layouts import make_voc2012

# The fixture's labels, by class name (VOC order: aeroplane=0 ... person=14 ... tvmonitor=19).
EXPECTED = {'2007_000032': [0, 14], '2007_000039': [19], '2008_000002': [1, 11],
            '2009_000001': [7]}


@pytest.fixture
def voc(tmp_path):
    return make_voc2012(tmp_path)


def as_indices(labels):
    return {k: np.flatnonzero(v).tolist() for k, v in labels.items()}


# ----------------------------------------------------------------------------- cls_labels.npy
def test_psa_cls_labels_npy_loads_str_ids_and_float32_vectors(voc):
    labels = lf.load_cls_labels_npy(voc.psa / 'cls_labels.npy')
    assert as_indices(labels) == EXPECTED
    assert all(type(k) is str for k in labels)
    assert labels['2007_000032'].dtype == np.float32 and labels['2007_000032'].shape == (20,)


@pytest.mark.parametrize('name', ['cls_labels.npy', 'cls_labels_py2.npy'])
def test_irn_int_keys_become_voc_ids(voc, name):
    labels = lf.load_cls_labels_npy(voc.irn / name)
    assert list(labels) == ['2007_000032', '2007_000039', '2008_000002', '2009_000001']
    assert as_indices(labels) == EXPECTED


def test_loader_matches_numpy_allow_pickle(voc):
    path = voc.psa / 'cls_labels.npy'
    reference = np.load(path, allow_pickle=True).item()
    ours = lf.load_cls_labels_npy(path)
    assert list(ours) == list(reference)
    for key in reference:
        assert np.array_equal(ours[key], reference[key])


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, 'w'))


def test_a_label_file_that_asks_for_other_globals_is_refused_without_running(tmp_path):
    target = tmp_path / 'pwned'
    path = tmp_path / 'cls_labels.npy'
    np.save(path, np.array({'2007_000032': _Evil(str(target))}, dtype=object), allow_pickle=True)
    with pytest.raises(DataFileError, match=r'cls_labels\.npy.*global io\.open is not allowed'):
        lf.load_cls_labels_npy(path)
    assert not target.exists()


def test_npy_checks_vector_length_values_and_type(tmp_path):
    path = tmp_path / 'l.npy'
    np.save(path, np.array({'a': np.ones(20, np.float32)}, dtype=object), allow_pickle=True)
    with pytest.raises(DataFileError, match=r'l\.npy: image a.*\(20,\).*\(80,\)'):
        lf.load_cls_labels_npy(path, num_classes=80)
    np.save(path, np.array({'a': np.full(3, 0.5)}, dtype=object), allow_pickle=True)
    with pytest.raises(DataFileError, match='multi-hot'):
        lf.load_cls_labels_npy(path)
    np.save(path, np.zeros((2, 3)))
    with pytest.raises(DataFileError, match='expected a pickled dict'):
        lf.load_cls_labels_npy(path)
    with pytest.raises(DataFileError, match='not found'):
        lf.load_cls_labels_npy(tmp_path / 'missing.npy')


def test_save_npy_in_both_key_styles(tmp_path):
    labels = {'2007_000032': np.eye(20, dtype=np.float32)[3]}
    lf.save_cls_labels_npy(tmp_path / 'psa.npy', labels)
    lf.save_cls_labels_npy(tmp_path / 'irn.npy', labels, key_style='irn')
    psa = np.load(tmp_path / 'psa.npy', allow_pickle=True).item()
    irn = np.load(tmp_path / 'irn.npy', allow_pickle=True).item()
    assert list(psa) == ['2007_000032']
    (key,) = irn
    assert isinstance(key, np.int32) and int(key) == 2007000032
    assert np.flatnonzero(irn[key]).tolist() == [3] and irn[key].dtype == np.float32
    with pytest.raises(ValueError, match='YYYY_NNNNNN'):
        lf.save_cls_labels_npy(tmp_path / 'x.npy', {'COCO_train2014_000000000009': np.ones(80)},
                               key_style='irn')


# ----------------------------------------------------------------------------- train_cls.txt
def test_train_cls_txt_round_trip_and_exact_text(voc, tmp_path):
    labels = lf.load_train_cls_txt(voc.oaa / 'train_cls.txt')
    assert as_indices(labels) == {k: EXPECTED[k] for k in ('2007_000032', '2007_000039',
                                                             '2008_000002')}
    out = tmp_path / 'out' / 'train_cls.txt'
    lf.save_train_cls_txt(out, labels)
    assert out.read_text() == '2007_000032 0 14\n2007_000039 19\n2008_000002 1 11\n'


def test_train_cls_txt_rejects_out_of_range_and_duplicates(tmp_path):
    path = tmp_path / 'train_cls.txt'
    path.write_text('2007_000032 0 20\n')
    with pytest.raises(DataFileError, match=r'train_cls\.txt: image 2007_000032.*\[20\].*0\.\.19'):
        lf.load_train_cls_txt(path)
    path.write_text('a 1\na 2\n')
    with pytest.raises(DataFileError, match='appears twice'):
        lf.load_train_cls_txt(path)
    path.write_text('a\n')
    with pytest.raises(DataFileError, match='is not an'):
        lf.load_train_cls_txt(path)


# ----------------------------------------------------------------------------- conversion
def test_convert_npy_to_txt_to_irn_npy_and_back(voc, tmp_path):
    assert lf.convert_labels(voc.psa / 'cls_labels.npy', tmp_path / 'all_cls.txt') == 4
    assert (tmp_path / 'all_cls.txt').read_text().splitlines()[0] == '2007_000032 0 14'
    lf.convert_labels(tmp_path / 'all_cls.txt', tmp_path / 'irn.npy', key_style='irn')
    assert as_indices(lf.load_cls_labels_npy(tmp_path / 'irn.npy')) == EXPECTED
    with pytest.raises(DataFileError, match=r"x\.json: unknown output type"):
        lf.convert_labels(tmp_path / 'irn.npy', tmp_path / 'x.json')


def test_convert_from_a_mask_directory(voc, tmp_path):
    lf.convert_labels(voc.root / 'SegmentationClassAug', tmp_path / 'aug_cls.txt')
    assert (tmp_path / 'aug_cls.txt').read_text() == (
        '2007_000032 0 14\n2007_000039 19\n2008_000002 1 11\n2009_000001 7\n')


def test_cli_main(voc, tmp_path, capsys):
    dst = tmp_path / 'labels.npy'
    assert lf.main([str(voc.oaa / 'train_cls.txt'), str(dst), '--key-style', 'irn']) == 0
    assert 'wrote 3 entries' in capsys.readouterr().out
    keys = np.load(dst, allow_pickle=True).item().keys()
    assert sorted(int(k) for k in keys) == [2007000032, 2007000039, 2008000002]
    with pytest.raises(SystemExit) as stop:
        lf.main([str(tmp_path / 'nope.txt'), str(dst)])
    assert stop.value.code == 2 and 'nope.txt' in capsys.readouterr().err


# ----------------------------------------------------------------------------- lists
def test_read_list_detects_every_form(voc, tmp_path):
    assert lf.read_list(voc.root / 'ImageSets' / 'Segmentation' / 'train.txt') == [
        '2007_000032', '2007_000039']
    assert lf.read_list(voc.psa / 'train_aug.txt') == ['2007_000032', '2007_000039',
                                                        '2008_000002']
    assert lf.read_list(voc.psa / 'test.txt') == ['2008_000010']
    assert lf.read_list(voc.oaa / 'val_cls.txt') == ['2009_000001']
    crlf = tmp_path / 'crlf.txt'
    crlf.write_bytes(b'2007_000032\r\n\r\n2007_000039\r\n')
    assert lf.read_list(crlf) == ['2007_000032', '2007_000039']


def test_list_entries_keep_the_written_paths(voc):
    (entry,) = lf.read_list_entries(voc.psa / 'val.txt')
    assert entry == lf.ListEntry('2009_000001', '/JPEGImages/2009_000001.jpg',
                                 '/SegmentationClassAug/2009_000001.png')


@pytest.mark.parametrize('line, message', [
    ('/JPEGImages/a.jpg /SegmentationClassAug/b.png', 'name different images'),
    ('/JPEGImages/../../etc/a.jpg', 'outside the data root'),
    ('/etc/passwd', 'outside the data root'),
    ('..', 'outside the data root'),
    ('a b c', 'cannot parse'),
    ('a b', 'cannot parse'),
])
def test_bad_list_lines_are_refused_with_file_and_line(tmp_path, line, message):
    path = tmp_path / 'list.txt'
    path.write_text(f'2007_000032\n{line}\n' if '/' not in line else f'{line}\n')
    with pytest.raises(DataFileError, match=rf'list\.txt:\d.*{message}'):
        lf.read_list(path)


def test_a_list_may_not_mix_forms(tmp_path):
    path = tmp_path / 'mixed.txt'
    path.write_text('2007_000032\n/JPEGImages/2007_000039.jpg /SegmentationClassAug/2007_000039.png\n')
    with pytest.raises(DataFileError, match=r'mixed\.txt:2: list mixes forms'):
        lf.read_list(path)


def test_list_writers_exact_text(tmp_path):
    lf.write_two_column_list(tmp_path / 'train_aug.txt', ['2007_000032', '2008_000002'])
    assert (tmp_path / 'train_aug.txt').read_text() == (
        '/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png\n'
        '/JPEGImages/2008_000002.jpg /SegmentationClassAug/2008_000002.png\n')
    lf.write_two_column_list(tmp_path / 'test.txt', ['2008_000010'], seg_dir=None)
    assert (tmp_path / 'test.txt').read_text() == '/JPEGImages/2008_000010.jpg\n'
    lf.write_id_list(tmp_path / 'ids.txt', ['2007_000032'])
    assert (tmp_path / 'ids.txt').read_text() == '2007_000032\n'
    with pytest.raises(DataFileError, match='outside the data root'):
        lf.write_id_list(tmp_path / 'bad.txt', ['../x'])
    assert not (tmp_path / 'bad.txt').exists()


# ----------------------------------------------------------------------------- masks
def test_labels_from_masks_ignores_background_and_void(voc):
    labels = lf.labels_from_masks(voc.root / 'SegmentationClass', ['2007_000032', '2009_000001'],
                                  20)
    assert as_indices(labels) == {'2007_000032': [0, 14], '2009_000001': [7]}


def test_labels_from_masks_names_a_bad_or_missing_mask(voc, tmp_path):
    Image.fromarray(np.full((4, 4), 21, np.uint8)).save(tmp_path / 'x.png')
    with pytest.raises(DataFileError, match=r'x\.png.*\[21\].*0\.\.20'):
        lf.labels_from_masks(tmp_path, ['x'], 20)
    with pytest.raises(DataFileError, match=r'mask not found: .*y\.png'):
        lf.labels_from_masks(tmp_path, ['y'], 20)


def test_mask_label_cache_is_used_and_invalidated(tmp_path, monkeypatch):
    masks, cache = tmp_path / 'masks', tmp_path / 'cache'
    masks.mkdir()
    Image.fromarray(np.full((4, 4), 3, np.uint8)).save(masks / 'a.png')
    assert as_indices(lf.labels_from_masks(masks, ['a'], 20, cache_dir=cache)) == {'a': [2]}
    assert [p.parent.name for p in cache.rglob('*.json')] == ['mask_labels']
    assert sorted(p.name for p in masks.iterdir()) == ['a.png']

    def no_reading(*args, **kwargs):
        raise AssertionError('the cache should have answered')
    monkeypatch.setattr(lf, 'read_label_png', no_reading)
    assert as_indices(lf.labels_from_masks(masks, ['a'], 20, cache_dir=cache)) == {'a': [2]}
    monkeypatch.undo()

    mask = np.full((4, 5), 7, np.uint8)   # a new mask: other size and mtime
    Image.fromarray(mask).save(masks / 'a.png')
    os.utime(masks / 'a.png', ns=(1, 1))
    assert as_indices(lf.labels_from_masks(masks, ['a'], 20, cache_dir=cache)) == {'a': [6]}


def test_colour_masks_decode_through_the_voc_palette():
    rgb = np.array([[[0, 0, 0], [128, 0, 0], [192, 128, 128]],
                    [[0, 64, 128], [224, 224, 192], [0, 128, 0]]], np.uint8)
    assert lf.color_mask_to_index(rgb).tolist() == [[0, 1, 15], [20, 255, 2]]
    rgb[0, 0] = (1, 2, 3)
    with pytest.raises(DataFileError, match=r'colour \(1, 2, 3\) is not in the palette'):
        lf.color_mask_to_index(rgb)

