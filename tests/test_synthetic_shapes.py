"""Tests of the SyntheticShapes generator and its on-disk cache (VOC layout)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsss_core.datasets import synthetic_shapes as ss
from wsss_core.datasets import synthetic_shapes_cache as cache
from wsss_core.datasets.synthetic_shapes import (CLASS_NAMES, GENERATOR_VERSION, PART_NAMES,
                                                 SyntheticShapesConfig, ensure_generated,
                                                 generate_sample)

SMALL = SyntheticShapesConfig(num_train=24, num_val=8)
FILES = ('JPEGImages', 'SegmentationClass', 'saliency', 'parts')


def _digest(sample: dict) -> str:
    h = hashlib.sha1()
    for key in ('img', 'mask', 'parts', 'saliency', 'labels'):
        h.update(np.ascontiguousarray(sample[key]).tobytes())
    h.update(str(sample['context']).encode())
    return h.hexdigest()


def _tree_bytes(root: Path) -> dict:
    """Relative path -> file bytes, for every file under root."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*'))
            if p.is_file()}


def _lines(path: Path):
    text = path.read_text()
    assert text.endswith('\n'), f'{path} must end with a newline'
    return text.splitlines()


# ----------------------------------------------------------------------------- samples
def test_sample_is_deterministic_and_seed_dependent():
    a = [_digest(generate_sample(SMALL, 0, i)) for i in range(5)]
    b = [_digest(generate_sample(SyntheticShapesConfig(num_train=24, num_val=8), 0, i))
         for i in range(5)]
    assert a == b
    assert len(set(a)) == 5, 'different indices must give different images'
    other_seed = dataclasses.replace(SMALL, seed=1)
    assert all(_digest(generate_sample(other_seed, 0, i)) != d for i, d in enumerate(a))
    assert _digest(generate_sample(SMALL, 1, 0)) != a[0], 'splits must differ'


def test_sample_contract():
    cfg = SMALL
    size, k = cfg.image_size, cfg.num_classes
    for i in range(30):
        s = generate_sample(cfg, 1, i)
        assert s['img'].shape == (size, size, 3) and s['img'].dtype == np.uint8
        for key in ('mask', 'parts', 'saliency'):
            assert s[key].shape == (size, size) and s[key].dtype == np.uint8
        assert s['labels'].shape == (k,) and s['labels'].dtype == np.uint8
        present = set(np.unique(s['mask'])) - {0}
        assert present == {c + 1 for c in np.nonzero(s['labels'])[0]}
        assert 1 <= len(present) <= 3
        assert s['mask'].max() <= k
        # parts only on objects, every object shows at least one part
        assert not np.any((s['parts'] > 0) & (s['mask'] == 0))
        assert s['parts'].max() <= cfg.num_parts
        for c in present:
            assert np.any(s['parts'][s['mask'] == c] > 0), f'object {c} of image {i} has no part'
            assert (s['mask'] == c).sum() >= cfg.min_visible * size * size
        assert s['context'] == -1 or s['labels'][s['context']] == 1


def test_statistics_over_a_few_dozen_images():
    cfg = SyntheticShapesConfig(num_train=0, num_val=0)
    counts, kinds, contexts, sal_iou = [], set(), [], []
    class_hits = np.zeros(cfg.num_classes)
    dominant_biggest = []
    for i in range(60):
        s = generate_sample(cfg, 0, i)
        counts.append(int(s['labels'].sum()))
        class_hits += s['labels']
        kinds |= set(np.unique(s['parts'])) - {0}
        contexts.append(s['context'])
        fg, sal = s['mask'] > 0, s['saliency'] >= 128
        sal_iou.append((fg & sal).sum() / max((fg | sal).sum(), 1))
        areas = np.bincount(s['parts'].ravel(), minlength=4)
        if areas[1] and (areas[2] or areas[3]):
            dominant_biggest.append(areas[1] >= max(areas[2], areas[3]))
    assert set(counts) == {1, 2, 3}
    assert class_hits.min() > 0
    assert kinds == {1, 2, 3}
    assert 0.3 < np.mean(np.array(contexts) >= 0) < 0.9
    # the saliency stand-in is informative but imperfect
    assert 0.55 < np.mean(sal_iou) < 0.95
    assert np.mean(dominant_biggest) > 0.8


def test_body_and_parts_knobs():
    one_part = SyntheticShapesConfig(num_parts=1, num_train=0, num_val=0)
    for i in range(10):
        assert set(np.unique(generate_sample(one_part, 0, i)['parts'])) <= {0, 1}
    no_ctx = SyntheticShapesConfig(p_context=0.0, num_train=0, num_val=0)
    assert all(generate_sample(no_ctx, 0, i)['context'] == -1 for i in range(10))
    eight = SyntheticShapesConfig(num_classes=8, image_size=64, num_train=0, num_val=0)
    s = generate_sample(eight, 0, 3)
    assert s['labels'].shape == (8,) and s['img'].shape == (64, 64, 3)


# ----------------------------------------------------------------------------- config
def test_fingerprint_tracks_every_knob():
    base = SyntheticShapesConfig()
    assert base.fingerprint() == SyntheticShapesConfig().fingerprint()
    assert len(base.fingerprint()) == 12
    changed = {dataclasses.replace(base, seed=1).fingerprint(),
               dataclasses.replace(base, p_context=0.85).fingerprint(),
               dataclasses.replace(base, part_probs=(0.9, 0.7, 0.6)).fingerprint(),
               dataclasses.replace(base, num_train=10).fingerprint()}
    assert base.fingerprint() not in changed and len(changed) == 4


def test_config_accepts_lists_and_rejects_nonsense():
    default = SyntheticShapesConfig()
    listed = SyntheticShapesConfig(part_probs=list(default.part_probs),
                                   object_area_ranges=[list(r) for r in default.object_area_ranges])
    assert isinstance(listed.part_probs, tuple) and isinstance(listed.object_area_ranges[0], tuple)
    assert listed == SyntheticShapesConfig() and hash(listed) == hash(SyntheticShapesConfig())
    assert len(CLASS_NAMES) == ss.MAX_CLASSES >= 6 and len(PART_NAMES) == 3
    with pytest.raises(ValueError, match='num_classes'):
        SyntheticShapesConfig(num_classes=len(CLASS_NAMES) + 1)
    with pytest.raises(ValueError, match='object_count_probs'):
        SyntheticShapesConfig(object_count_probs=(0.5, 0.4))
    with pytest.raises(ValueError, match='num_parts'):
        SyntheticShapesConfig(num_parts=4)


# ----------------------------------------------------------------------------- disk layout
@pytest.fixture(scope='module')
def small_root(tmp_path_factory):
    return ensure_generated(SMALL, root=tmp_path_factory.mktemp('cache'), workers=2,
                            progress=False)


def test_layout_and_contents(small_root):
    root = small_root
    assert root.name == SMALL.fingerprint() and root.parent.name == 'synthetic_shapes'
    lists = root / 'ImageSets' / 'Segmentation'
    for split, split_id, n in (('train', 0, 24), ('val', 1, 8)):
        ids = _lines(lists / f'{split}.txt')
        assert ids == [f'{split}_{i:06d}' for i in range(n)]
        cls_rows = [ln.split() for ln in _lines(lists / f'{split}_cls.txt')]
        assert [r[0] for r in cls_rows] == ids
        for index, (sid, *classes) in enumerate(cls_rows):
            for sub in FILES:
                assert (root / sub / f'{sid}.png').is_file()
            with Image.open(root / 'SegmentationClass' / f'{sid}.png') as im:
                assert im.mode == 'P'
                assert im.getpalette()[:6] == [0, 0, 0, 128, 0, 0]
                mask = np.array(im)
            from_mask = sorted(int(v) - 1 for v in np.unique(mask) if v > 0)
            assert [int(c) for c in classes] == from_mask
            with Image.open(root / 'saliency' / f'{sid}.png') as im:
                assert im.mode == 'L' and im.size == (mask.shape[1], mask.shape[0])
            with Image.open(root / 'JPEGImages' / f'{sid}.png') as im:
                assert im.mode == 'RGB'
                img = np.array(im)
            if index < 3:  # lossless: the files hold exactly what generate_sample returns
                ref = generate_sample(SMALL, split_id, index)
                assert np.array_equal(img, ref['img']) and np.array_equal(mask, ref['mask'])
    meta = json.loads((root / 'meta.json').read_text())
    assert meta['fingerprint'] == SMALL.fingerprint()
    assert meta['generator_version'] == GENERATOR_VERSION
    assert meta['counts'] == {'train': 24, 'val': 8}
    assert meta['class_names'] == list(CLASS_NAMES[:SMALL.num_classes])
    assert SyntheticShapesConfig(**meta['config']) == SMALL


def test_worker_count_does_not_change_output(small_root, tmp_path):
    one = ensure_generated(SMALL, root=tmp_path, workers=1, progress=False)
    assert one != small_root
    a, b = _tree_bytes(one), _tree_bytes(small_root)
    assert a.keys() == b.keys() and len(a) == 4 * 32 + 5
    assert a == b


def test_different_seed_gives_different_dataset(tmp_path):
    a = ensure_generated(dataclasses.replace(SMALL, num_train=4, num_val=2), root=tmp_path,
                         workers=1, progress=False)
    b = ensure_generated(dataclasses.replace(SMALL, num_train=4, num_val=2, seed=5),
                         root=tmp_path, workers=1, progress=False)
    assert a != b
    img = 'JPEGImages/train_000000.png'
    assert (a / img).read_bytes() != (b / img).read_bytes()


def test_voc_layout_reader_loads_it(small_root):
    voc = pytest.importorskip('wsss_core.datasets.voc_layout')
    if not hasattr(voc, 'read_cls_list'):
        pytest.skip('VOC reader has no read_cls_list')
    ids = voc.read_id_list(small_root / 'ImageSets' / 'Segmentation' / 'val.txt')
    assert len(ids) == 8


# ----------------------------------------------------------------------------- cache safety
TINY = SyntheticShapesConfig(num_train=6, num_val=2)


def test_complete_cache_is_reused(tmp_path, monkeypatch):
    root = ensure_generated(TINY, root=tmp_path, workers=1, progress=False)
    stamp = {p: p.stat().st_mtime_ns for p in root.rglob('*') if p.is_file()}

    def boom(*a, **k):
        raise AssertionError('regenerated a complete dataset')
    monkeypatch.setattr(cache, 'generate_into', boom)
    assert ensure_generated(TINY, root=tmp_path, workers=1, progress=False) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob('*') if p.is_file()} == stamp


def test_env_var_sets_default_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('WSSS_CACHE', str(tmp_path / 'envcache'))
    root = ensure_generated(TINY, workers=1, progress=False)
    assert root == tmp_path / 'envcache' / 'synthetic_shapes' / TINY.fingerprint()


def test_interrupted_generation_is_not_taken_as_complete(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):  # all images written, killed before meta.json
        raise KeyboardInterrupt
    monkeypatch.setattr(cache, '_meta', interrupted)
    with pytest.raises(KeyboardInterrupt):
        ensure_generated(TINY, root=tmp_path, workers=1, progress=False)
    final = cache.dataset_dir(TINY, tmp_path)
    assert not final.exists()
    assert not cache.is_complete(final, TINY)

    # leftovers of a killed run: a partial temp dir and a final dir without meta.json
    partial = final.parent / f'.{final.name}.partial-killed'
    (partial / 'JPEGImages').mkdir(parents=True)
    (final / 'JPEGImages').mkdir(parents=True)
    (final / 'JPEGImages' / 'junk.png').write_bytes(b'not a png')
    assert not cache.is_complete(final, TINY)
    monkeypatch.undo()
    root = ensure_generated(TINY, root=tmp_path, workers=1, progress=False)
    assert root == final and cache.is_complete(root, TINY)
    assert not (root / 'JPEGImages' / 'junk.png').exists()
    assert not partial.exists()
    assert not list(final.parent.glob(f'.{final.name}.partial-*'))


def test_missing_file_or_stale_meta_is_incomplete(tmp_path):
    root = ensure_generated(TINY, root=tmp_path, workers=1, progress=False)
    assert cache.is_complete(root, TINY)
    (root / 'saliency' / 'val_000001.png').unlink()
    assert not cache.is_complete(root, TINY)
    root = ensure_generated(TINY, root=tmp_path, workers=1, progress=False)
    assert (root / 'saliency' / 'val_000001.png').is_file()
    meta = json.loads((root / 'meta.json').read_text())
    meta['generator_version'] = GENERATOR_VERSION - 1
    (root / 'meta.json').write_text(json.dumps(meta))
    assert not cache.is_complete(root, TINY)


def test_concurrent_generators_generate_once(tmp_path, monkeypatch):
    calls = []
    real_generate = cache.generate_into

    def counting(root, cfg, workers=2, progress=True):
        calls.append(root)
        real_generate(root, cfg, workers=workers, progress=progress)
    monkeypatch.setattr(cache, 'generate_into', counting)
    results, errors = [], []

    def run():
        try:
            results.append(ensure_generated(TINY, root=tmp_path, workers=1, progress=False))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(results)) == 1 and cache.is_complete(results[0], TINY)
    assert len(calls) == 1, 'the lock must let only one generator run'
    assert sorted(os.listdir(results[0].parent)) == sorted(
        [TINY.fingerprint(), f'.{TINY.fingerprint()}.lock'])
