"""TaggedImageFolder and its tag files: the formats, the id / split / class rules, and every
bad input as a DataFileError naming the file and the line."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsss_core.datasets.tag_files import read_tag_file, split_tags
from wsss_core.datasets.tagged_folder import TaggedImageFolder, image_id_of
from wsss_core.io import DataFileError

HW = (12, 16)


def write_image(path: Path, value: int = 100, hw=HW) -> np.ndarray:
    arr = np.full(hw + (3,), value, np.uint8)
    arr[0, 0] = (value + 7) % 256
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return arr


def folder(tmp_path: Path, names=('a.png', 'b.png', 'sub/c.png', 'sub/deep/d.jpg')) -> Path:
    root = tmp_path / 'images'
    for k, name in enumerate(names):
        write_image(root / name, (40 * k) % 256)
    return root


def csv_file(tmp_path: Path, lines, name='tags.csv', data: bytes = None) -> Path:
    path = tmp_path / name
    path.write_bytes(data if data is not None else ('\n'.join(lines) + '\n').encode())
    return path


def raises_at(path: Path, line, fn, *words) -> str:
    """``fn()`` raises DataFileError naming ``path:line`` and every word."""
    with pytest.raises(DataFileError) as err:
        fn()
    msg = str(err.value)
    assert (f'{path}:{line}:' if line is not None else str(path)) in msg, msg
    for w in words:
        assert w in msg, (w, msg)
    return msg


# ============================================================================ tag files
@pytest.mark.parametrize('cell, sep, tags', [
    ('cat', None, ('cat',)),
    ('cat dog', None, ('cat', 'dog')),                       # whitespace
    ('cat;dog', None, ('cat', 'dog')),
    (' cat | dog ;bird; ', None, ('cat', 'dog', 'bird')),    # ; and | together, empty piece
    ('traffic  light;person', None, ('traffic light', 'person')),  # spaces kept, runs of one
    ('cat;cat', None, ('cat',)),                             # counted once
    ('', None, ()),
    ('a b/c d', '/', ('a b', 'c d')),                        # explicit separator only
    ('a;b', '/', ('a;b',)),
])
def test_split_tags_rule(cell, sep, tags):
    assert split_tags(cell, sep) == tags


def test_csv_header_quotes_extra_columns_bom_crlf_and_blank_lines(tmp_path):
    data = ('\ufeff Image ,note,TAGS\r\n'
            '"odd, name.png",x,cat|dog\r\n'
            '\r\n'
            'b.png,,bird\r\n').encode('utf-8')
    path = csv_file(tmp_path, None, data=data)
    rows = read_tag_file(path)
    assert [(r.lineno, r.image, r.tags, r.split) for r in rows] == [
        (2, 'odd, name.png', ('cat', 'dog'), None), (4, 'b.png', ('bird',), None)]


def test_tsv_is_tab_separated(tmp_path):
    path = csv_file(tmp_path, ['image\ttags\tsplit', 'a, b.png\tcat, dog\tval'], 'tags.tsv')
    (row,) = read_tag_file(path, tag_separator=',')
    assert (row.image, row.tags, row.split) == ('a, b.png', ('cat', 'dog'), 'val')


def test_json_object_and_list_forms(tmp_path):
    obj = tmp_path / 'o.json'
    obj.write_text('{\n  "a.png": ["cat", " dog "],\n  "b.png": "bird;cat"\n}\n')
    assert [(r.lineno, r.image, r.tags) for r in read_tag_file(obj)] == [
        (2, 'a.png', ('cat', 'dog')), (3, 'b.png', ('bird', 'cat'))]
    lst = tmp_path / 'l.json'
    lst.write_text('[\n {"image": "a.png", "tags": ["cat"], "split": "train"},\n\n'
                   ' {"image": "b.png",\n  "tags": [], "split": "val", "x": 1}\n]')
    assert [(r.lineno, r.image, r.tags, r.split) for r in read_tag_file(lst)] == [
        (2, 'a.png', ('cat',), 'train'), (4, 'b.png', (), 'val')]


@pytest.mark.parametrize('text, line, words', [
    ('{"a.png": ["cat"],\n "b.png": ["dog",]}', 2, ['not valid JSON']),
    ('[\n {"image": "a.png", "tags": ["cat"]},\n "b.png"\n]', 3, ['must be an object']),
    ('[\n {"image": "a.png"}\n]', 2, ["lacks ['tags']"]),
    ('{\n "a.png": ["cat"],\n "b.png": 3\n}', 3, ['tags must be']),
    ('{\n "a.png": ["cat", 1]\n}', 2, ['tags must be']),
    ('[\n {"image": "a.png", "tags": ["cat"], "split": "val"},\n'
     ' {"image": "b.png", "tags": ["cat"]}\n]', 3, ['no split named']),
    ('[\n {"image": "", "tags": ["cat"]}\n]', 2, ['no image named']),
    ('"a.png"', 1, ['holds an object']),
])
def test_bad_json_is_named_by_file_and_line(tmp_path, text, line, words):
    path = tmp_path / 'tags.json'
    path.write_text(text)
    raises_at(path, line, lambda: read_tag_file(path), *words)


@pytest.mark.parametrize('lines, line, words', [
    (['a.png,cat'], 1, ['header']),                         # no header line
    (['image,tags', 'a.png,cat,dog'], 2, ['3 cells', 'quote']),   # unquoted comma
    (['image,tags', 'a.png'], 2, ['1 cells']),
    (['image,tags', '"a.png,cat'], 2, ['not a valid CSV row']),
    (['image,tags,image', 'a.png,cat,x'], 1, ["['image']", 'twice']),
    (['image,tags,split', 'a.png,cat,train', 'b.png,cat, '], 3, ['no split named']),
    (['image,tags', ' ,cat'], 2, ['no image named']),
])
def test_bad_csv_is_named_by_file_and_line(tmp_path, lines, line, words):
    path = csv_file(tmp_path, lines)
    raises_at(path, line, lambda: read_tag_file(path), *words)


def test_empty_and_non_utf8_files(tmp_path):
    empty = csv_file(tmp_path, None, 'e.csv', data=b'\n\n')
    raises_at(empty, None, lambda: read_tag_file(empty), 'empty')
    latin = csv_file(tmp_path, None, 'l.csv', data='image,tags\na.png,cat\nb.png,caf\xe9\n'
                     .encode('latin-1'))
    raises_at(latin, 3, lambda: read_tag_file(latin), 'not UTF-8')
    js = tmp_path / 'l.json'
    js.write_bytes('{\n"a.png": ["caf\xe9"]}'.encode('latin-1'))
    raises_at(js, 2, lambda: read_tag_file(js), 'not UTF-8')


# ============================================================================ the dataset
def test_ids_paths_classes_and_labels(tmp_path):
    root = folder(tmp_path)
    tags = csv_file(tmp_path, ['image,tags', 'a.png,dog', 'sub\\c,cat;dog',
                               'sub/deep/d.jpg,bird', 'b,cat'])
    ds = TaggedImageFolder(root, tags)
    assert ds.class_names == ('bird', 'cat', 'dog') and ds.num_classes == 3
    assert ds.img_ids == ['a', 'sub__c', 'sub__deep__d', 'b']
    assert [r.img_path for r in ds.records] == [root / 'a.png', root / 'sub/c.png',
                                                root / 'sub/deep/d.jpg', root / 'b.png']
    sample = ds[1]
    assert sample['img_id'] == 'sub__c' and sample['img'].shape == HW + (3,)
    assert sample['labels'].tolist() == [0.0, 1.0, 1.0]
    assert 'gt_seg' not in sample and 'saliency' not in sample
    assert image_id_of('x/y.z.png') == 'x__y.z'


def test_class_names_list_or_file_fix_the_label_order(tmp_path):
    root = folder(tmp_path)
    tags = csv_file(tmp_path, ['image,tags', 'a.png,dog', 'b.png,cat'])
    ds = TaggedImageFolder(root, tags, class_names=['dog', 'cat', 'bird'])
    assert ds.class_names == ('dog', 'cat', 'bird')
    assert [r.class_ids for r in ds.records] == [(0,), (1,)]
    (tmp_path / 'classes.txt').write_text('\ufeffcat\r\ndog\r\n')
    ds = TaggedImageFolder(root, tags, class_names=str(tmp_path / 'classes.txt'))
    assert ds.class_names == ('cat', 'dog') and [r.class_ids for r in ds.records] == [(1,), (0,)]


def test_relative_paths_are_looked_up_under_the_data_root_first(tmp_path, monkeypatch):
    root = folder(tmp_path)
    (root / 'tags.csv').write_text('image,tags\na.png,cat\n')
    monkeypatch.chdir(tmp_path)
    assert TaggedImageFolder('images', 'tags.csv').img_ids == ['a']


@pytest.mark.parametrize('lines, line, words, kwargs', [
    (['image,tags', 'a.png,cat', 'zz.png,cat'], 3, ["'zz.png' not found"], {}),
    (['image,tags', 'a.jpg,cat'], 2, ["'a.jpg' not found", 'a.png'], {}),
    (['image,tags', 'a.png,cat', 'b.png,cta'], 3, ["unknown class 'cta'", 'cat, dog'],
     dict(class_names=['cat', 'dog'])),
    (['image,tags', 'a.png,cat', 'b.png,dog', 'a.png,dog'], 4,
     ["'a.png' appears twice (first on line 2)"], {}),
    (['image,tags', 'a.png,cat', 'a,dog'], 3, ["image id 'a'"], {}),
    (['image,tags', 'sub/c.png,cat', 'sub__c.png,dog'], 3, ["image id 'sub__c'", 'rename'],
     {}),
    (['image,tags', 'a.png,cat', 'b.png,'], 3, ['no tags', 'allow_empty_tags'], {}),
    (['image,tags', 'a.png,cat', '../images/b.png,cat'], 3, ['not a path under'], {}),
    (['image,tags', '/etc/passwd,cat'], 2, ['not a path under'], {}),
    (['image,tags', 'a.png,cat', 'b.png,background'], 3, ["'background' cannot"], {}),
    (['image,tags,split', 'a.png,cat,train', 'b.png,cat,all'], 3, ['reserved'], {}),
])
def test_bad_rows_are_named_by_file_and_line(tmp_path, lines, line, words, kwargs):
    root = folder(tmp_path)
    if any(ln.startswith('sub__c') for ln in lines):
        write_image(root / 'sub__c.png')
    tags = csv_file(tmp_path, lines)
    raises_at(tags, line, lambda: TaggedImageFolder(root, tags, **kwargs), *words)


def test_the_same_rules_hold_for_json(tmp_path):
    root = folder(tmp_path)
    path = tmp_path / 'tags.json'
    path.write_text('{\n "a.png": ["cat"],\n "b.png": ["dog"],\n "a.png": ["dog"]\n}')
    raises_at(path, 4, lambda: TaggedImageFolder(root, path), 'appears twice (first on line 2)')
    path.write_text('[\n {"image": "a.png", "tags": ["cat"]},\n {"image": "q.png", '
                    '"tags": ["cat"]}\n]')
    raises_at(path, 3, lambda: TaggedImageFolder(root, path), "'q.png' not found")


def test_ambiguous_suffixless_name(tmp_path):
    root = folder(tmp_path, ('a.png', 'a.JPG'))
    tags = csv_file(tmp_path, ['image,tags', 'a,cat'])
    raises_at(tags, 2, lambda: TaggedImageFolder(root, tags), 'ambiguous', 'a.JPG', 'a.png')


def test_class_name_errors(tmp_path):
    root = folder(tmp_path)
    tags = csv_file(tmp_path, ['image,tags', 'a.png,cat'])
    with pytest.raises(DataFileError, match=r"class_names\[2\]: class name 'cat' listed twice"):
        TaggedImageFolder(root, tags, class_names=['cat', 'dog', 'cat'])
    names = tmp_path / 'names.txt'
    names.write_text('cat\nBackground\n')
    raises_at(names, 2, lambda: TaggedImageFolder(root, tags, class_names=str(names)),
              "'background' cannot")
    none = csv_file(tmp_path, ['image,tags', 'a.png,'], 'none.csv')
    raises_at(none, None, lambda: TaggedImageFolder(root, none, allow_empty_tags=True),
              'no row has a tag')


def test_empty_tags_allowed_give_a_zero_vector(tmp_path):
    root = folder(tmp_path)
    tags = csv_file(tmp_path, ['image,tags', 'a.png,cat', 'b.png,'])
    ds = TaggedImageFolder(root, tags, allow_empty_tags=True)
    assert ds[1]['labels'].tolist() == [0.0] and ds.records[1].class_ids == ()


def test_split_column_and_all(tmp_path):
    root = folder(tmp_path)
    tags = csv_file(tmp_path, ['image,tags,split', 'a.png,cat,train', 'b.png,dog,val',
                               'sub/c.png,cat,train', 'sub/deep/d.jpg,dog,test'])
    assert TaggedImageFolder(root, tags).img_ids == ['a', 'sub__c']
    val = TaggedImageFolder(root, tags, split='val')
    assert val.img_ids == ['b'] and val.class_names == ('cat', 'dog')  # classes: every split
    assert len(TaggedImageFolder(root, tags, split='all')) == 4
    assert TaggedImageFolder(root, tags, split='all', max_samples=3).img_ids == \
        ['a', 'b', 'sub__c']
    msg = raises_at(tags, None, lambda: TaggedImageFolder(root, tags, split='extra'),
                    "split 'extra' has no images")
    assert 'test (1), train (2), val (1)' in msg
    with pytest.raises(ValueError, match='split column'):
        TaggedImageFolder(root, tags, val_fraction=0.5)


def test_val_fraction_is_the_documented_hash_rule(tmp_path):
    names = [f'i{k:02d}.png' for k in range(24)]
    root = folder(tmp_path, names)
    tags = csv_file(tmp_path, ['image,tags'] + [f'{n},cat' for n in names])

    def h(img_id, seed):   # the docstring's rule, computed independently
        return int(hashlib.sha1(f'{seed}:{img_id}'.encode()).hexdigest()[:8], 16) / 2 ** 32

    for seed in (0, 3):
        want_val = [n[:-4] for n in names if h(n[:-4], seed) < 0.3]
        assert 0 < len(want_val) < 24
        val = TaggedImageFolder(root, tags, split='val', val_fraction=0.3, split_seed=seed)
        train = TaggedImageFolder(root, tags, split='train', val_fraction=0.3, split_seed=seed)
        assert val.img_ids == want_val
        assert train.img_ids == [n[:-4] for n in names if n[:-4] not in want_val]
    assert len(TaggedImageFolder(root, tags)) == 24          # val_fraction 0: all in train
    raises_at(tags, None, lambda: TaggedImageFolder(root, tags, split='val'),
              "split 'val' has no images", 'train (24)', 'val_split=None')


def test_masks_mirrored_or_by_id_and_saliency(tmp_path):
    root = folder(tmp_path)
    tags = csv_file(tmp_path, ['image,tags', 'a.png,cat', 'sub/c.png,dog', 'b.png,cat'])
    masks, sal = tmp_path / 'masks', tmp_path / 'sal'
    m_a = np.zeros(HW, np.uint8)
    m_a[2:5, 3:9] = 1
    m_a[0, 0] = 255
    (masks / 'sub').mkdir(parents=True)
    Image.fromarray(m_a).save(masks / 'a.png')
    Image.fromarray(m_a * 0 + 2).save(masks / 'sub' / 'c.png')       # mirrored path
    sal.mkdir()
    for img_id in ('a', 'sub__c', 'b'):                              # flat ids
        Image.fromarray(np.full(HW, 200, np.uint8)).save(sal / f'{img_id}.png')
    ds = TaggedImageFolder(root, tags, mask_dir=masks, saliency_dir=sal)
    assert [r.seg_path for r in ds.records] == [masks / 'a.png', masks / 'sub/c.png', None]
    assert np.array_equal(ds[0]['gt_seg'], m_a) and (ds[1]['gt_seg'] == 2).all()
    assert 'gt_seg' not in ds[2] and (ds[2]['saliency'] == 200).all()
    assert 'gt_seg' not in TaggedImageFolder(root, tags, mask_dir=masks, load_gt=False)[0]
    (sal / 'b.png').unlink()
    with pytest.raises(DataFileError, match=r'no saliency map in .* for image .*b\.png'):
        TaggedImageFolder(root, tags, saliency_dir=sal)
    with pytest.raises(DataFileError, match='mask_dir folder not found'):
        TaggedImageFolder(root, tags, mask_dir=tmp_path / 'nope')


def test_bad_masks_are_named_when_loaded(tmp_path):
    root = folder(tmp_path)
    tags = csv_file(tmp_path, ['image,tags', 'a.png,cat', 'b.png,dog'])
    masks = tmp_path / 'masks'
    masks.mkdir()
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(masks / 'a.png')      # wrong size
    Image.fromarray(np.full(HW, 3, np.uint8)).save(masks / 'b.png')         # 3 > C = 2
    ds = TaggedImageFolder(root, tags, mask_dir=masks)
    with pytest.raises(DataFileError, match=r'a\.png: mask size'):
        ds.load_sample(0)
    with pytest.raises(DataFileError, match=r'b\.png: label value\(s\) \[3\]'):
        ds.load_sample(1)


def test_resize_applies_to_the_image_and_its_maps(tmp_path):
    root = folder(tmp_path)
    tags = csv_file(tmp_path, ['image,tags', 'a.png,cat'])
    masks = tmp_path / 'masks'
    masks.mkdir()
    mask = np.zeros(HW, np.uint8)
    mask[:, 8:] = 1                       # right half: class 1
    Image.fromarray(mask).save(masks / 'a.png')
    ds = TaggedImageFolder(root, tags, mask_dir=masks, resize=dict(size=(6, 4)))
    sample = ds[0]
    assert sample['img'].shape == (6, 4, 3)
    assert sample['gt_seg'].tolist() == [[0, 0, 1, 1]] * 6   # nearest keeps the halves


def test_missing_root_and_tag_file(tmp_path):
    with pytest.raises(DataFileError, match='image folder .* not found'):
        TaggedImageFolder(tmp_path / 'nope', tmp_path / 'tags.csv')
    root = folder(tmp_path)
    with pytest.raises(DataFileError, match='tag file .* not found'):
        TaggedImageFolder(root, tmp_path / 'tags.csv')


def test_metainfo_and_registry(tmp_path):
    from wsss_core.components import register_core_components
    from wsss_core.datasets import build_dataset
    register_core_components()
    root = folder(tmp_path)
    tags = tmp_path / 'tags.json'
    tags.write_text(json.dumps({'a.png': ['dog'], 'b.png': ['cat']}))
    ds = build_dataset(dict(type='TaggedImageFolder', data_root=str(root), labels=str(tags)),
                       split='all', load_gt=False)
    meta = ds.metainfo
    assert meta['classes'] == ('cat', 'dog') and meta['num_classes'] == 2
    assert meta['split'] == 'all' and len(meta['palette']) == 3
