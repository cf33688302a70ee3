"""A generated corpus of bad input for the dataset readers and the list / label-file parsers.

Every property says the same thing: reading either succeeds with the *correct* result (checked
against an independent NumPy reference or the intact file) or raises ``DataFileError`` naming
the offending file (and the line, for text files) -- never another exception type, never a
silently wrong label.  Hypothesis draws the cases (the ``wsss`` profile in ``conftest.py``
makes them deterministic); files go to a fresh temporary directory per example.
"""
from __future__ import annotations

import builtins
import io
import os
import pickle
import re
import string
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from PIL import Image
from torch.utils.data import DataLoader

from wsss_core.datasets import VOCLayoutDataset
from wsss_core.datasets import label_formats as lf
from wsss_core.datasets.coco14 import COCO2014
from wsss_core.datasets.voc12 import VOC2012
from wsss_core.datasets.voc_layout import read_cls_list, read_id_list
from wsss_core.wsol.metadata import WSOLMetadata
from wsss_core.io import DataFileError, read_gray_png, read_image, read_label_png, load_cam
from wsss_core.io import save_cam, save_label_png

EXAMPLES = 40   # per property; parametrized properties run PER_KIND examples of each kind
PER_KIND = 4


def new_dir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix='wsss_bad_input_')


def raises_naming(fn, path, line=None) -> str:
    """Call ``fn``; it must raise DataFileError whose message names ``path`` (and ``line``)."""
    with pytest.raises(DataFileError) as err:
        fn()
    msg = str(err.value)
    assert str(path) in msg, msg
    if line is not None:
        assert f'{path}:{line}:' in msg or f'(line {line})' in msg, (line, msg)
    return msg


# ============================================================================ images
MODES = ('1', 'L', 'LA', 'P', 'RGB', 'RGBA', 'CMYK', 'I;16', 'I', 'F')
PNG_MODES = ('1', 'L', 'LA', 'P', 'RGB', 'RGBA', 'I;16')


def make_image(mode: str, h: int, w: int, rs: np.random.RandomState, values=None):
    """A PIL image of ``mode`` and the raw array it holds (palette for P)."""
    if mode == '1':
        arr = rs.rand(h, w) > 0.5
        return Image.fromarray(arr), arr, None
    if mode in ('I;16', 'I', 'F', 'L', 'P'):
        dtype = {'I;16': np.uint16, 'I': np.int32, 'F': np.float32}.get(mode, np.uint8)
        hi = {'I;16': 65536, 'I': 70000}.get(mode, 256)
        arr = (rs.choice(values, (h, w)) if values is not None else
               rs.rand(h, w) * 300 if mode == 'F' else rs.randint(0, hi, (h, w))).astype(dtype)
        img = Image.fromarray(arr)
        if mode == 'P':
            pal = rs.randint(0, 256, (256, 3)).astype(np.uint8)
            img.putpalette(pal.tobytes())
            return img, arr, pal
        return img, arr, None
    arr = rs.randint(0, 256, (h, w, len(mode))).astype(np.uint8)
    return Image.frombytes(mode, (w, h), arr.tobytes()), arr, None


def save(img: Image.Image, path: Path, fmt: str) -> Path:
    img.save(path, fmt)
    with Image.open(path) as back:   # the corpus is what we meant to write
        assert back.mode == img.mode, (back.mode, img.mode)
    return path


def luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma, Pillow's documented RGB -> L rule."""
    rgb = rgb.astype(np.float64)
    return rgb[..., 0] * 299 / 1000 + rgb[..., 1] * 587 / 1000 + rgb[..., 2] * 114 / 1000


def expected_rgb(mode, arr, pal):
    """The documented RGB result, computed independently; None where the mode is refused."""
    if mode in ('I', 'F'):
        return None
    if mode in ('1', 'L', 'LA', 'I;16'):
        gray = (arr.astype(np.uint8) * 255 if mode == '1' else arr[..., 0] if mode == 'LA'
                else (arr >> 8).astype(np.uint8) if mode == 'I;16' else arr)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == 'P':
        return pal[arr]
    if mode == 'CMYK':   # Pillow: R = (255 - C) * (255 - K) / 255, rounded
        c, k = arr[..., :3].astype(np.float64), arr[..., 3:].astype(np.float64)
        return np.round((255 - c) * (255 - k) / 255)
    return arr[..., :3]   # RGB, RGBA (alpha dropped, not composited)


@pytest.mark.parametrize('mode', MODES)
@settings(max_examples=2 * PER_KIND)
@given(tiff=st.booleans(), h=st.integers(1, 9), w=st.integers(1, 9),
       seed=st.integers(0, 2**31 - 1))
def test_image_modes_are_converted_exactly_or_refused(mode, tiff, h, w, seed):
    rs = np.random.RandomState(seed)
    img, arr, pal = make_image(mode, h, w, rs)
    fmt = 'TIFF' if tiff or mode not in PNG_MODES else 'PNG'
    with new_dir() as d:
        path = save(img, Path(d) / f'x.{fmt.lower()}', fmt)
        want = expected_rgb(mode, arr, pal)
        if want is None:
            assert 'mode' in raises_naming(lambda: read_image(path), path)
            assert 'mode' in raises_naming(lambda: read_gray_png(path), path)
            return
        got = read_image(path)
        assert got.dtype == np.uint8 and got.shape == (h, w, 3)
        np.testing.assert_allclose(got, want, atol=1 if mode == 'CMYK' else 0)
        gray = read_gray_png(path)
        assert gray.dtype == np.uint8 and gray.shape == (h, w)
        want_gray = want[..., 0] if mode in ('1', 'L', 'LA', 'I;16') else luma(want)
        np.testing.assert_allclose(gray, want_gray, atol=0 if mode in ('1', 'L', 'LA', 'I;16') else 2)


def encoded(fmt: str, rs: np.random.RandomState, h: int, w: int) -> bytes:
    buf = io.BytesIO()
    if fmt == 'label':
        label = rs.randint(0, 4, (h, w)).astype(np.uint8)
        img = Image.fromarray(label)
        img.putpalette(bytes(768))
        img.save(buf, 'PNG')
    else:
        kwargs = dict(quality=90, progressive=bool(rs.randint(2))) if fmt == 'JPEG' else {}
        Image.fromarray(rs.randint(0, 256, (h, w, 3)).astype(np.uint8)).save(buf, fmt, **kwargs)
    return buf.getvalue()


READERS = {'image': read_image, 'gray': read_gray_png, 'label': lambda p: read_label_png(p, 3)}


@pytest.mark.parametrize('kind', [('JPEG', 'image'), ('PNG', 'image'), ('JPEG', 'gray'),
                                  ('PNG', 'gray'), ('label', 'label')])
@settings(max_examples=15)
@given(h=st.integers(1, 12), w=st.integers(1, 12), seed=st.integers(0, 2**31 - 1),
       cut=st.floats(0, 1, exclude_max=True))
def test_truncated_images_fail_by_name_or_read_exactly(kind, h, w, seed, cut):
    """A file cut at any byte: an error naming it, or (e.g. only IEND lost) the intact pixels."""
    fmt, reader = kind[0], READERS[kind[1]]
    data = encoded(fmt, np.random.RandomState(seed), h, w)
    with new_dir() as d:
        full, part = Path(d) / 'full.img', Path(d) / f'cut.{fmt.lower()}'
        full.write_bytes(data)
        part.write_bytes(data[:int(cut * len(data))])
        intact = reader(full)
        try:
            got = reader(part)
        except DataFileError as exc:
            assert str(part) in str(exc)
            event(f'{fmt}: named error')
        else:
            np.testing.assert_array_equal(got, intact)
            event(f'{fmt}: intact pixels (only trailing chunks lost)')


MAGICS = [b'', b'\x89PNG\r\n\x1a\n', b'\xff\xd8\xff\xe0', b'GIF89a', b'BM', b'II*\x00']


@pytest.mark.filterwarnings('ignore:Corrupt EXIF data')   # Pillow's warning on junk TIFF tags
@settings(max_examples=60)
@given(magic=st.sampled_from(MAGICS), junk=st.binary(max_size=200),
       reader=st.sampled_from(sorted(READERS)))
def test_random_bytes_are_a_named_error(magic, junk, reader):
    with new_dir() as d:
        path = Path(d) / 'junk.png'
        path.write_bytes(magic + junk)
        try:
            got = READERS[reader](path)
        except DataFileError as exc:
            assert str(path) in str(exc)
            event('named error')
        else:   # a few bytes can be a valid tiny BMP/GIF: then it must be a proper map
            event('read as a valid tiny image')
            assert got.dtype == np.uint8 and got.ndim == (3 if reader == 'image' else 2)


# ============================================================================ label PNGs
@pytest.mark.parametrize('mode', ('P', 'L', 'I;16', 'I', 'RGB', 'RGBA', 'LA', '1', 'F', 'CMYK'))
@settings(max_examples=2 * PER_KIND)
@given(num_classes=st.integers(1, 25), seed=st.integers(0, 2**31 - 1),
       odd=st.sampled_from([None, 'above_c', 254, 256, 1000, 65535, -1]))
def test_label_pngs_read_exact_indices_or_refuse(mode, num_classes, seed, odd):
    rs = np.random.RandomState(seed)
    values = [0, 255, *range(1, num_classes + 1)]
    if odd == 'above_c':
        odd = num_classes + 1
    wide = mode in ('I;16', 'I')
    if odd is not None and (wide or 0 <= odd <= 255) and not (mode == 'I;16' and odd < 0):
        values = values + [odd] * len(values)     # make the odd value likely
    img, arr, _ = make_image(mode, 4, 5, rs, values if mode in ('P', 'L', 'I;16', 'I') else None)
    fmt = 'PNG' if mode in PNG_MODES else 'TIFF'
    with new_dir() as d:
        path = save(img, Path(d) / f'lab.{fmt.lower()}', fmt)
        if mode not in ('P', 'L', 'I;16', 'I'):
            assert f'mode {mode}' in raises_naming(lambda: read_label_png(path), path)
            return
        if arr.min() < 0 or arr.max() > 255:    # would wrap around in uint8
            raises_naming(lambda: read_label_png(path), path)
            raises_naming(lambda: read_label_png(path, num_classes), path)
            return
        np.testing.assert_array_equal(read_label_png(path), arr)
        bad = sorted({int(v) for v in np.unique(arr)} - set(range(num_classes + 1)) - {255})
        if bad:
            msg = raises_naming(lambda: read_label_png(path, num_classes), path)
            assert str(bad) in msg
        else:
            got = read_label_png(path, num_classes)
            assert got.dtype == np.uint8
            np.testing.assert_array_equal(got, arr)


# ============================================================================ dataset trees
sizes = st.tuples(st.integers(2, 7), st.integers(2, 7))


def write_tree(root: Path, layout: str, img_hw, maps: dict, rs) -> dict:
    """One image ``img0`` (PNG) with mask / saliency / pseudo label of the given (H, W)."""
    sub = 'train2014' if layout == 'coco14' else ''
    img_id = 'COCO_train2014_000000000009' if layout == 'coco14' else 'img0'
    folders = dict(img='JPEGImages', mask='SegmentationClass', sal='saliency', pseudo='pseudo')
    arrays = dict(img=rs.randint(0, 256, (*img_hw, 3)).astype(np.uint8))
    for key, (hw, values) in maps.items():
        arrays[key] = rs.choice(values, hw).astype(np.uint8)
    for key, arr in arrays.items():
        folder = root / folders[key] / sub
        folder.mkdir(parents=True)
        if key in ('mask', 'pseudo'):
            save_label_png(folder / f'{img_id}.png', arr)
        else:
            Image.fromarray(arr).save(folder / f'{img_id}.png')
    lists = root / 'ImageSets' / ('' if layout == 'coco14' else 'Segmentation')
    lists.mkdir(parents=True)
    (lists / ('train14.txt' if layout == 'coco14' else 'train.txt')).write_text(img_id + '\n')
    return dict(img_id=img_id, arrays=arrays,
                paths={k: root / folders[k] / sub / f'{img_id}.png' for k in arrays})


def build(layout: str, root: Path):
    if layout == 'voc_layout':
        return VOCLayoutDataset(root, num_classes=3, img_suffix='.png', saliency_dir='saliency')
    cls = COCO2014 if layout == 'coco14' else VOC2012
    return cls(root, 'train', img_suffix='.png', saliency_dir='saliency',
               pseudo_label_dir='pseudo', label_cache=False)


TREE_FAULTS = ('none', 'mask_size', 'saliency_size', 'pseudo_size', 'mask_values',
               'pseudo_values', 'any')


@pytest.mark.parametrize('fault', TREE_FAULTS)
@settings(max_examples=2 * PER_KIND)
@given(layout=st.sampled_from(['voc_layout', 'voc12', 'coco14']), img_hw=sizes,
       other_hw=sizes, odd=st.integers(0, 255), seed=st.integers(0, 2**31 - 1), data=st.data())
def test_dataset_samples_are_exact_or_name_the_wrong_file(fault, layout, img_hw, other_hw, odd,
                                                          seed, data):
    """Masks, saliency and pseudo labels of another size than the image, or with values
    outside 0..C / 255: an error naming the file (and both sizes); otherwise exact arrays and
    the image label = the classes present in the mask.  ``any``: sizes and values drawn
    freely, several faults at once (the first in load order is the one named)."""
    rs = np.random.RandomState(seed)
    if fault.startswith('pseudo') and layout == 'voc_layout':
        layout = 'voc12'   # VOCLayoutDataset has no pseudo labels
    num_classes = {'voc_layout': 3, 'voc12': 20, 'coco14': 80}[layout]
    ok = [0, 1, num_classes, 255]
    if fault.endswith('_size') and other_hw == img_hw:
        other_hw = (img_hw[0] + 1, img_hw[1])
    if fault.endswith('_values') and (odd <= num_classes or odd == 255):
        odd = num_classes + 1
    hw = {k: other_hw if fault == f'{k}_size' else img_hw for k in ('mask', 'saliency', 'pseudo')}
    if fault == 'any':
        hw = {k: data.draw(st.one_of(st.just(img_hw), sizes)) for k in hw}
    maps = {'mask': (hw['mask'], ok), 'sal': (hw['saliency'], list(range(256)))}
    if layout != 'voc_layout':
        maps['pseudo'] = (hw['pseudo'], ok)
    odd_in = fault[:-len('_values')] if fault.endswith('_values') else (
        data.draw(st.sampled_from(['mask', 'pseudo', None])) if fault == 'any' else None)
    if odd_in in maps:
        maps[odd_in] = (maps[odd_in][0], [odd])
    with new_dir() as d:
        root = Path(d)
        tree = write_tree(root, layout, img_hw, maps, rs)
        arrays, paths = tree['arrays'], tree['paths']
        bad_values = {k: sorted({int(v) for v in np.unique(arrays[k])} - set(range(num_classes + 1))
                                - {255}) for k in ('mask', 'pseudo') if k in arrays}
        if bad_values['mask']:   # labels are derived from the masks when the set is built
            event('mask values outside 0..C')
            msg = raises_naming(lambda: build(layout, root), paths['mask'])
            assert str(bad_values['mask']) in msg
            return
        ds = build(layout, root)
        for key in ('mask', 'sal', 'pseudo'):    # the order load_sample checks them in
            if key not in arrays:
                continue
            if bad_values.get(key):
                raises_naming(lambda: ds.load_sample(0), paths[key])
                event(f'{key} values outside 0..C')
                return
            if arrays[key].shape != img_hw:
                event(f'{key} size differs')
                msg = raises_naming(lambda: ds.load_sample(0), paths[key])
                assert str(arrays[key].shape) in msg and str(tuple(img_hw)) in msg
                return
        sample = ds.load_sample(0)
        event('exact sample')
        assert sample['img_id'] == tree['img_id']
        np.testing.assert_array_equal(sample['img'], arrays['img'])
        np.testing.assert_array_equal(sample['gt_seg'], arrays['mask'])
        np.testing.assert_array_equal(sample['saliency'], arrays['sal'])
        if 'pseudo' in arrays:
            np.testing.assert_array_equal(sample['pseudo_seg'], arrays['pseudo'])
        present = [int(v) - 1 for v in np.unique(arrays['mask']) if 0 < v <= num_classes]
        assert np.flatnonzero(sample['labels']).tolist() == present


# ============================================================================ list files
ID_CHARS = string.ascii_letters + string.digits + '_-.' + 'éß中'
plain_ids = st.text(ID_CHARS, min_size=1, max_size=10).filter(
    lambda s: s not in ('.', '..') and not s.lower().endswith(lf.IMAGE_SUFFIXES))
id_lists = st.lists(plain_ids, min_size=1, max_size=6, unique=True)
text_layout = st.fixed_dictionaries(dict(
    crlf=st.booleans(), bom=st.booleans(), final_newline=st.booleans(),
    blank_after=st.lists(st.integers(0, 6), max_size=3),
    pad=st.sampled_from(['', ' ', '\t', '  \t']), lead=st.sampled_from(['', ' ', '\t'])))


def list_line(form: str, token: str, classes=(1,)) -> str:
    if form == 'paths':
        return f'/JPEGImages/{token}.jpg /SegmentationClassAug/{token}.png'
    if form == 'cls':
        return ' '.join([token, *map(str, classes)])
    return token


def write_text_lines(path: Path, lines, layout) -> list:
    """Write ``lines`` (str or raw bytes) with the layout's quirks; return each one's line number."""
    out, numbers = [], []
    for i, line in enumerate(lines):
        pad = (layout['lead'].encode(), layout['pad'].encode())
        out.append(pad[0] + (line if isinstance(line, bytes) else line.encode('utf-8')) + pad[1])
        numbers.append(len(out))
        if i in layout['blank_after']:
            out.append(b'   ' if i % 2 else b'')
    end = b'\r\n' if layout['crlf'] else b'\n'
    data = end.join(out) + (end if layout['final_newline'] else b'')
    path.write_bytes((b'\xef\xbb\xbf' if layout['bom'] else b'') + data)
    return numbers


def class_sets(ids, seed):
    rs = np.random.RandomState(seed)
    return {i: tuple(sorted(set(rs.randint(0, 20, rs.randint(1, 4)).tolist()))) for i in ids}


@settings(max_examples=EXAMPLES)
@given(form=st.sampled_from(['ids', 'paths', 'cls']), ids=id_lists, layout=text_layout,
       seed=st.integers(0, 2**31 - 1))
def test_well_formed_lists_read_exactly_whatever_the_line_ends(form, ids, layout, seed):
    """CRLF, BOM, blank lines, leading / trailing spaces, no final newline: the same ids."""
    classes = class_sets(ids, seed)
    with new_dir() as d:
        path = Path(d) / 'train.txt'
        write_text_lines(path, [list_line(form, i, classes[i]) for i in ids], layout)
        assert lf.read_list(path) == ids
        assert read_id_list(path) == ids
        if form == 'cls':
            labels = lf.load_train_cls_txt(path, 20)
            assert list(labels) == ids
            assert {i: tuple(np.flatnonzero(v).tolist()) for i, v in labels.items()} == classes
            assert read_cls_list(path, 20) == classes


BAD_TOKENS = {
    'separator': 'sub/x', 'backslash': 'sub\\x', 'dotdot': '../x', 'absolute': '/etc/passwd',
    'nul': 'x\x00y', 'dot': '.',
}
NON_UTF8 = [b'\xff', b'\xfe\xfe', b'\xc3(', b'\xed\xa0\x80', b'\x80abc']
BAD_CLASSES = ['x', '\u00b2', '1.5', '20', '-1', '0x3']


LIST_FAULTS = [(form, kind) for form in ('ids', 'paths', 'cls')
               for kind in ('duplicate', 'non_utf8', 'garbage', 'bad_class', *BAD_TOKENS)
               # a two-column line holds paths by design (only the id is taken from it)
               if not (form == 'paths' and kind in ('separator', 'absolute'))
               and (kind != 'bad_class' or form == 'cls')]


@pytest.mark.parametrize('form, kind', LIST_FAULTS)
@settings(max_examples=PER_KIND)
@given(ids=id_lists, layout=text_layout, where=st.integers(0, 6), data=st.data())
def test_one_bad_list_line_is_named_by_file_and_line(form, kind, ids, layout, where, data):
    lines = [list_line(form, i) for i in ids]
    if kind == 'duplicate':
        bad = list_line(form, data.draw(st.sampled_from(ids)), (2,))
    elif kind == 'non_utf8':
        raw = data.draw(st.sampled_from(NON_UTF8))
        bad = list_line(form, 'x').encode() + raw if form != 'paths' else raw + b' x'
    elif kind == 'garbage':
        bad = {'ids': 'x y', 'paths': '/JPEGImages/x.jpg /SegmentationClassAug/y.png',
               'cls': 'x.jpg 1 2'}[form]
    elif kind == 'bad_class':
        bad = list_line(form, 'not~listed', (data.draw(st.sampled_from(BAD_CLASSES)),))
    else:
        bad = list_line(form, BAD_TOKENS[kind])
    where = min(where, len(lines))
    if kind == 'duplicate':
        where = max(where, ids.index(bad.split()[0] if form != 'paths' else
                                     Path(bad.split()[0]).stem) + 1)
    lines.insert(where, bad)
    with new_dir() as d:
        path = Path(d) / 'train.txt'
        line = write_text_lines(path, lines, layout)[where]
        read = (lambda: lf.load_train_cls_txt(path, 20)) if form == 'cls' else (
            lambda: lf.read_list(path))
        msg = raises_naming(read, path, line)
        if kind == 'duplicate':
            assert 'twice' in msg
        if not (kind == 'bad_class' and bad.split()[1] in ('20', '-1')):   # ids only: fine
            raises_naming(lambda: read_id_list(path), path, line)


@pytest.mark.parametrize('kind', ['ok', 'duplicate', 'non_utf8', 'unknown_id'])
@settings(max_examples=2 * PER_KIND)
@given(layout=text_layout, ids=id_lists)
def test_oaa_label_file_beside_a_voc_list(kind, layout, ids):
    """VOCLayoutDataset with ``<split>_cls.txt``: exact labels, or an error naming the file."""
    classes = class_sets(ids, len(ids))
    with new_dir() as d:
        root = Path(d)
        lists = root / 'ImageSets' / 'Segmentation'
        lists.mkdir(parents=True)
        (lists / 'train.txt').write_text('\n'.join(ids) + '\n', encoding='utf-8')
        lines = [list_line('cls', i, [c % 3 for c in classes[i]]) for i in ids]
        if kind == 'duplicate':
            lines.append(list_line('cls', ids[0], (2,)))
        elif kind == 'non_utf8':
            lines.append(b'\xff 1')
        elif kind == 'unknown_id':
            lines = lines[1:]
        numbers = write_text_lines(lists / 'train_cls.txt', lines, layout)
        cls_file = lists / 'train_cls.txt'
        build_ds = lambda: VOCLayoutDataset(root, num_classes=3, seg_dir=None)  # noqa: E731
        if kind == 'ok':
            ds = build_ds()
            assert ds.img_ids == ids
            assert [r.class_ids for r in ds.records] == [
                tuple(sorted({c % 3 for c in classes[i]})) for i in ids]
        elif kind == 'unknown_id':
            assert ids[0] in raises_naming(build_ds, cls_file)
        else:
            raises_naming(build_ds, cls_file, numbers[-1])


json_values = st.recursive(st.none() | st.booleans() | st.integers(-3, 30) | st.floats(-1, 30)
                           | st.text(max_size=3), lambda inner: st.lists(inner, max_size=4),
                           max_leaves=6)
bad_class_lists = st.lists(st.one_of(st.integers(-5, -1), st.integers(5, 300), st.booleans(),
                                     st.floats(0, 4), st.text(max_size=2), st.lists(st.integers(0, 4),
                                                                                    max_size=2)),
                           min_size=1, max_size=3)


@settings(max_examples=EXAMPLES)
@given(entry=st.one_of(json_values, bad_class_lists.map(lambda c: ('stamp', c))),
       raw=st.one_of(st.none(), st.binary(max_size=40)), seed=st.integers(0, 2**31 - 1))
def test_a_damaged_mask_label_cache_is_rescanned_not_trusted(entry, raw, seed):
    """Labels derived from masks are cached outside the data root; a cache entry that is not
    ``[mtime, size, [class ids in 0..C-1]]`` for the mask, or an unreadable cache file, is
    ignored and the mask read again -- never a wrong or crashing label."""
    import json
    rs = np.random.RandomState(seed)
    masks = {f'm{i}': rs.choice([0, 1, 3, 255], (4, 4)).astype(np.uint8) for i in range(2)}
    truth = {i: sorted({int(v) - 1 for v in np.unique(m) if 0 < v <= 4}) for i, m in masks.items()}
    with new_dir() as d:
        mask_dir, cache = Path(d) / 'masks', Path(d) / 'cache'
        for img_id, m in masks.items():
            save_label_png(mask_dir / f'{img_id}.png', m)
        lf.labels_from_masks(mask_dir, list(masks), 4, cache_dir=cache)
        (cache_file,) = (cache / 'mask_labels').glob('*.json')
        event('unreadable cache file' if raw is not None else 'stamp + bad class ids'
              if isinstance(entry, tuple) else 'odd JSON entry')
        if raw is not None:
            cache_file.write_bytes(raw)
        else:
            doc = json.loads(cache_file.read_text())
            if isinstance(entry, tuple):      # the right stamp, impossible class ids
                entry = doc['entries']['m0'][:2] + [entry[1]]
            doc['entries']['m0'] = entry
            cache_file.write_text(json.dumps(doc))
        got = lf.labels_from_masks(mask_dir, list(masks), 4, cache_dir=cache)
        assert {i: np.flatnonzero(v).tolist() for i, v in got.items()} == truth


# ============================================================================ WSOL metadata
WSOL_FAULTS = [
    ('class_labels.txt', 'x', 'label'), ('class_labels.txt', '3.5', 'label'),
    ('class_labels.txt', '-1', 'label'), ('class_labels.txt', 'nan', 'label'),
    ('class_labels.txt', '5', 'label'), ('class_labels.txt', '', 'label'),
    ('image_sizes.txt', '0', 'size'), ('image_sizes.txt', 'inf', 'size'),
    ('image_sizes.txt', '1.5', 'size'), ('localization.txt', 'nan', 'box'),
    ('localization.txt', 'x1<x0', 'box'), ('localization.txt', '', 'fields'),
    ('image_ids.txt', '../x.png', 'id'), ('image_ids.txt', '/abs/x.png', 'id'),
    ('image_ids.txt', 'a\\x.png', 'id'), ('image_ids.txt', 'a\x00.png', 'id'),
    ('image_ids.txt', 'C:x.png', 'id'), ('image_ids.txt', 'dup', 'id'),
    ('image_ids.txt', b'\xff', 'id'), ('class_labels.txt', b'\xfe', 'label'),
]


def wsol_lines(ids, labels, sizes, boxes):
    return {
        'image_ids.txt': list(ids),
        'class_labels.txt': [f'{i},{labels[i]}' for i in ids],
        'image_sizes.txt': [f'{i},{w},{h}' for i, (w, h) in zip(ids, sizes)],
        'localization.txt': [f'{i},{x0},{y0},{x1},{y1}' for i in ids for x0, y0, x1, y1 in boxes[i]],
    }


@pytest.mark.parametrize('bad', [None, *WSOL_FAULTS],
                         ids=['well_formed', *(f'{f}:{v!r}' for f, v, _ in WSOL_FAULTS)])
@settings(max_examples=PER_KIND)
@given(n=st.integers(1, 4), seed=st.integers(0, 2**31 - 1), layout=text_layout,
       spaces=st.booleans(), pick=st.integers(0, 10))
def test_wsol_metadata_exact_or_named_by_file_and_line(bad, n, seed, layout, spaces, pick):
    rs = np.random.RandomState(seed)
    ids = [f'train/{c}/img{i}.png' for i, c in enumerate(rs.choice(['a', 'b'], n))]
    labels = {i: int(rs.randint(0, 5)) for i in ids}
    sizes = [(int(rs.randint(1, 50)), int(rs.randint(1, 50))) for _ in ids]
    boxes = {i: [tuple(sorted(rs.randint(0, 40, 2).tolist())) for _ in range(2)] for i in ids}
    boxes = {i: [(a, a // 2, b, b // 2 + 1) for a, b in bx] for i, bx in boxes.items()}
    files = wsol_lines(ids, labels, sizes, boxes)
    bad_line = None
    if bad is not None:
        name, value, what = bad
        lines = files[name]
        k = pick % len(lines)
        img_id = lines[k].split(',')[0]
        if isinstance(value, bytes):
            lines[k] = lines[k].encode() + value
        elif what == 'id' and value == 'dup':
            lines.append(img_id)
            k = len(lines) - 1
        elif what == 'id':
            lines[k] = value
        elif what == 'label':
            lines[k] = f'{img_id},{value}'
        elif what == 'size':
            lines[k] = f'{img_id},{value},7'
        elif what == 'box':
            lines[k] = f'{img_id},5,1,2,3' if value == 'x1<x0' else f'{img_id},{value},1,2,3'
        else:
            lines[k] = f'{img_id},1,2,3'
        bad_line = (name, k)
    with new_dir() as d:
        root = Path(d)
        meta = root / 'metadata' / 'TOY' / 'train'
        meta.mkdir(parents=True)
        numbers = {}
        for name, lines in files.items():
            if spaces:
                lines = [ln.replace(',', ' , ') if isinstance(ln, str) else ln for ln in lines]
            numbers[name] = write_text_lines(meta / name, lines, layout)
        load = lambda: WSOLMetadata(root, 'TOY', 'train', num_classes=5)  # noqa: E731
        if bad_line is None:
            ds = load()
            assert ds.img_ids == ids
            assert [r.class_id for r in ds.records] == [labels[i] for i in ids]
            assert [r.size for r in ds.records] == sizes
            assert [r.boxes for r in ds.records] == [tuple(map(lambda b: tuple(map(float, b)),
                                                               boxes[i])) for i in ids]
            return
        name, k = bad_line
        out_of_range = bad[1] == '5'     # a valid integer, checked against num_classes later
        raises_naming(load, meta / name, None if out_of_range else numbers[name][k])


# ============================================================================ cls_labels.npy
class Reduce:
    """Pickles as ``fn(*args)``: what a hostile label file would ask the unpickler to call."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def hostile(marker: Path):
    return st.sampled_from([
        Reduce(os.system, (f'touch {marker}',)),
        Reduce(builtins.exec, (f'open({str(marker)!r}, "w").close()',)),
        Reduce(builtins.eval, (f'open({str(marker)!r}, "w")',)),
        Reduce(io.open, (str(marker), 'w')),
        Reduce(subprocess.Popen, (['touch', str(marker)],)),
    ])


voc_ids = st.lists(st.from_regex(r'\A20(0[7-9]|1[0-2])_[0-9]{6}\Z'), min_size=1, max_size=4,
                   unique=True)
NPY_MUTATIONS = [
    None, 'wrong_length', 'string_value', 'dict_value', 'none_value', 'half', 'two', 'nan',
    'matrix', 'tuple_key', 'float_key', 'bytes_key', 'bool_key', 'none_key', 'slash_key',
    'dotdot_key', 'empty_key', 'duplicate', 'not_a_dict', 'hostile_value', 'hostile_key',
    'hostile_nested']


def write_npy(path: Path, obj, protocol: int) -> None:
    """What ``np.save(path, obj, allow_pickle=True)`` writes, with a chosen pickle protocol."""
    arr = np.array(obj, dtype=object)
    with open(path, 'wb') as fh:
        np.lib.format.write_array_header_1_0(fh, np.lib.format.header_data_from_array_1_0(arr))
        pickle.dump(arr, fh, protocol=protocol)


@pytest.mark.parametrize('mutation', NPY_MUTATIONS)
@settings(max_examples=PER_KIND)
@given(ids=voc_ids, key_style=st.sampled_from(['psa', 'irn']), protocol=st.integers(2, 5),
       dtype=st.sampled_from(['float32', 'float64', 'int64', 'bool', 'list']),
       seed=st.integers(0, 2**31 - 1), data=st.data())
def test_cls_labels_npy_exact_or_refused_without_running_code(mutation, ids, key_style, protocol,
                                                              dtype, seed, data):
    rs = np.random.RandomState(seed)
    vectors = {i: (rs.rand(20) < 0.2).astype(np.float32) for i in ids}

    def stored(vec):
        return vec.tolist() if dtype == 'list' else vec.astype(dtype)

    def key(i):
        return np.int32(lf.id_to_irn_key(i)) if key_style == 'irn' else i

    obj = {key(i): stored(v) for i, v in vectors.items()}
    first = key(ids[0])
    with new_dir() as d:
        marker = Path(d) / 'marker'
        bad = {'wrong_length': np.zeros(21), 'string_value': 'abc', 'dict_value': {'a': 1},
               'none_value': None, 'half': np.full(20, 0.5), 'two': np.full(20, 2.0),
               'nan': np.full(20, np.nan), 'matrix': np.zeros((20, 1))}
        bad_keys = {'tuple_key': (1, 2), 'float_key': 1.5, 'bytes_key': b'x', 'bool_key': True,
                    'none_key': None, 'slash_key': 'a/b', 'dotdot_key': '..', 'empty_key': ''}
        if mutation in bad:
            obj[first] = bad[mutation]
        elif mutation in bad_keys:
            obj[bad_keys[mutation]] = stored(vectors[ids[0]])
        elif mutation == 'duplicate':   # the same image under its psa and its irn key
            obj[ids[0] if key_style == 'irn' else np.int32(lf.id_to_irn_key(ids[0]))] = obj[first]
        elif mutation == 'not_a_dict':
            obj = list(obj.values())
        elif mutation == 'hostile_value':
            obj[first] = data.draw(hostile(marker))
        elif mutation == 'hostile_key':
            obj[data.draw(hostile(marker))] = obj[first]
        elif mutation == 'hostile_nested':
            obj[first] = [0.0] * 19 + [data.draw(hostile(marker))]
        path = Path(d) / 'cls_labels.npy'
        write_npy(path, obj, protocol)
        if mutation is None:
            got = lf.load_cls_labels_npy(path, 20)
            assert list(got) == ids
            for i in ids:
                assert got[i].dtype == np.float32
                np.testing.assert_array_equal(got[i], vectors[i])
        else:
            raises_naming(lambda: lf.load_cls_labels_npy(path, 20), path)
        assert not marker.exists()


@pytest.mark.parametrize('how', ['cut', 'junk'])
@settings(max_examples=EXAMPLES // 2)
@given(ids=voc_ids, cut=st.floats(0, 1, exclude_max=True), junk=st.binary(max_size=64),
       prefix=st.sampled_from([b'', b'\x93NUMPY\x01\x00', b'\x93NUMPY\x02\x00']))
def test_truncated_or_random_npy_is_a_named_error(how, ids, cut, junk, prefix):
    with new_dir() as d:
        path = Path(d) / 'cls_labels.npy'
        buf = io.BytesIO()
        np.save(buf, np.array({i: np.ones(20, np.float32) for i in ids}, dtype=object))
        data = buf.getvalue()
        path.write_bytes(data[:int(cut * len(data))] if how == 'cut' else prefix + junk)
        raises_naming(lambda: lf.load_cls_labels_npy(path, 20), path)


# ============================================================================ CAM .npz
CAM_MUTATIONS = [
    None, 'object_cams', 'missing_cams', 'missing_ids', 'cams_2d', 'cams_4d', 'ids_longer',
    'ids_float', 'ids_negative', 'cams_complex', 'cams_nan', 'cams_str', 'plain_npy', 'cut',
    'junk']


@pytest.mark.parametrize('mutation', CAM_MUTATIONS)
@settings(max_examples=PER_KIND)
@given(k=st.integers(0, 3), h=st.integers(1, 5), w=st.integers(1, 5),
       seed=st.integers(0, 2**31 - 1), cut=st.floats(0, 1, exclude_max=True),
       junk=st.binary(max_size=64))
def test_cam_files_exact_or_a_named_error(mutation, k, h, w, seed, cut, junk):
    rs = np.random.RandomState(seed)
    cams = rs.rand(k, h, w).astype(np.float32)
    ids = rs.permutation(20)[:k]
    with new_dir() as d:
        path, marker = Path(d) / 'x.npz', Path(d) / 'marker'
        arrays = dict(cams=cams, class_ids=ids.astype(np.int16))
        edits = {
            'object_cams': dict(cams=np.array([Reduce(os.system, (f'touch {marker}',))],
                                              dtype=object)),
            'cams_2d': dict(cams=cams.reshape(k * h, w)), 'cams_4d': dict(cams=cams[None]),
            'ids_longer': dict(class_ids=np.arange(k + 1)), 'ids_float': dict(
                class_ids=ids + 0.5), 'ids_negative': dict(class_ids=-1 - ids),
            'cams_complex': dict(cams=cams + 1j), 'cams_str': dict(cams=np.array(['a'] * 3)),
            'cams_nan': dict(cams=np.full((max(k, 1), h, w), np.nan)),
        }
        if mutation == 'ids_negative' and k == 0:
            mutation = 'ids_longer'
        arrays.update(edits.get(mutation, {}))
        if mutation == 'cams_nan':
            arrays['class_ids'] = np.arange(max(k, 1))
        if mutation in ('missing_cams', 'missing_ids'):
            del arrays['cams' if mutation == 'missing_cams' else 'class_ids']
        if mutation in (None, 'cut', 'junk'):
            save_cam(path, cams, ids)
        elif mutation == 'plain_npy':
            with open(path, 'wb') as fh:
                np.save(fh, cams)
        else:
            with open(path, 'wb') as fh:
                np.savez(fh, **arrays)
        data = path.read_bytes()
        if mutation == 'cut':
            path.write_bytes(data[:int(cut * len(data))])
        elif mutation == 'junk':
            path.write_bytes(junk)
        if mutation is None:
            got, got_ids = load_cam(path)
            assert got.dtype == np.float32 and got_ids.tolist() == ids.tolist()
            np.testing.assert_array_equal(got, cams.astype(np.float16).astype(np.float32))
        else:
            raises_naming(lambda: load_cam(path), path)
        assert not marker.exists()


# ============================================================================ worker processes
def first_item(batch):
    return batch[0]


@pytest.mark.parametrize('fault', ['truncated_image', 'mask_size'])
def test_errors_in_a_dataloader_worker_reach_the_main_process_named(tmp_path, fault):
    """The DataFileError raised in a worker arrives as a DataFileError naming the file."""
    rs = np.random.RandomState(0)
    maps = {'mask': ((6, 5), [0, 1]), 'sal': ((6, 5), [0, 255])}
    tree = write_tree(tmp_path, 'voc_layout', (6, 5), maps, rs)
    bad = tree['paths']['img' if fault == 'truncated_image' else 'mask']
    if fault == 'truncated_image':
        bad.write_bytes(bad.read_bytes()[:40])
    else:
        save_label_png(bad, np.zeros((5, 5), np.uint8))
    ds = VOCLayoutDataset(tmp_path, num_classes=3, img_suffix='.png', saliency_dir='saliency')
    loader = DataLoader(ds, batch_size=1, num_workers=1, collate_fn=first_item)
    with pytest.raises(DataFileError) as err:
        next(iter(loader))
    msg = str(err.value)
    assert str(bad) in msg and 'worker' in msg
    assert fault != 'mask_size' or re.search(r'\(5, 5\).*\(6, 5\)', msg)
