"""ShapeCorpus: the generator (determinism, balance, every class drawable, flip-symmetric
class definitions), its cache (worker-count independence, reuse, interruption) and the
dataset class through a classifier pipeline."""
from __future__ import annotations

import dataclasses
import json
import math
import pickle

import numpy as np
import pytest

from wsss_core.datasets import shape_corpus as sc
from wsss_core.datasets import shape_corpus_cache as cache
from wsss_core.datasets import shape_corpus_render as C
from wsss_core.datasets import synthetic_shapes_render as R
from wsss_core.datasets.shape_corpus import (CORPUS_CLASS_NAMES, ShapeCorpusConfig,
                                             corpus_config, draw_corpus_image,
                                             generate_corpus_image)

TINY = ShapeCorpusConfig(image_size=48, num_classes=4, train_per_class=3, val_per_class=1)


# ----------------------------------------------------------------------------- generator
def test_same_config_same_bytes_other_seed_or_split_other_bytes():
    cfg = ShapeCorpusConfig(image_size=64, num_classes=8)
    for index in (0, 5, 13):
        a, la = generate_corpus_image(cfg, 0, index)
        b, lb = generate_corpus_image(ShapeCorpusConfig(image_size=64, num_classes=8), 0, index)
        assert a.dtype == np.uint8 and a.shape == (64, 64, 3)
        assert a.tobytes() == b.tobytes() and la == lb
        c, lc = generate_corpus_image(dataclasses.replace(cfg, seed=1), 0, index)
        d, _ = generate_corpus_image(cfg, 1, index)
        assert lc == la and c.tobytes() != a.tobytes() and d.tobytes() != a.tobytes()


def test_classes_are_balanced_and_cycle_through_the_indices():
    cfg = ShapeCorpusConfig(num_classes=7, train_per_class=5, val_per_class=2)
    assert cfg.split_size('train') == 35 and cfg.split_size('val') == 14
    labels = [sc.class_of(cfg, i) for i in range(cfg.split_size('train'))]
    assert np.bincount(labels).tolist() == [5] * 7
    assert [generate_corpus_image(cfg, 0, i)[1] for i in (0, 6, 7, 15)] == [0, 6, 0, 1]


def test_class_order_is_a_bijection_whose_first_classes_differ_in_both_parts():
    for t, s in ((12, 8), (6, 4), (5, 3), (4, 4)):
        pairs = sc.class_pairs(t, s)
        assert sorted(pairs) == [(i, j) for i in range(t) for j in range(s)]
    assert len(set(CORPUS_CLASS_NAMES)) == sc.MAX_CLASSES == 96
    first = sc.CLASS_PAIRS[:12]
    assert len({t for t, _ in first}) == 12 and len({s for _, s in first}) == 8
    assert CORPUS_CLASS_NAMES[0] == f'{sc.TEXTURE_NAMES[0]}/{sc.OUTLINE_NAMES[0]}'
    # none of SyntheticShapes' class geometries is a corpus texture
    assert not set(sc.TEXTURE_NAMES) & set(R.PATTERNS)


@pytest.mark.parametrize('size', [64, 96])
def test_every_class_is_drawable_with_a_sane_object(size):
    cfg = ShapeCorpusConfig(image_size=size)
    for label in range(cfg.num_classes):
        rng = np.random.default_rng([3, label])
        img, mask = draw_corpus_image(rng, cfg, label)
        assert img.shape == (size, size, 3) and img.dtype == np.uint8
        frac = float(mask.mean())
        assert 0.12 <= frac <= 0.6, (CORPUS_CLASS_NAMES[label], frac)
        # textured classes show two colours on the object
        if not CORPUS_CLASS_NAMES[label].startswith('plain/'):
            spread = img[mask].astype(float).std(axis=0).max()
            assert spread > 15, (CORPUS_CLASS_NAMES[label], spread)


@pytest.mark.parametrize('size', [64, 96])
def test_every_texture_family_covers_part_of_the_image(size):
    period = 6.5 * size / 96
    for name in C.TEXTURES:
        cover = np.mean([C.texture_mask(name, np.random.default_rng(k), size, period).mean()
                         for k in range(4)])
        if name == 'plain':
            assert cover == 0
        else:
            assert 0.1 < cover < 0.75, (name, cover)


def test_outline_areas_follow_the_shoelace_formula():
    assert C.polygon_area(C.regular_polygon(4)) == pytest.approx(2.0)
    assert C.polygon_area(C.regular_polygon(3)) == pytest.approx(3 * math.sqrt(3) / 4)
    assert C.polygon_area(C.cross_polygon(0.25)) == pytest.approx(4 * 0.5 * 0.75 + 0.25)
    mask = C.outline_mask(200, C.regular_polygon(4, math.pi / 4), 99.5, 99.5, 60.0, 1.0, 0.0)
    assert mask.sum() == pytest.approx(2 * 60.0 ** 2, rel=0.03)
    crescent = C.crescent_polygon(0.8, 0.5)
    assert 0.2 * math.pi < C.polygon_area(crescent) < 0.7 * math.pi
    with pytest.raises(ValueError, match='crescent'):
        C.crescent_polygon(0.3, 0.2)   # the cut lies inside the disc: a ring, not a crescent


def _stripe_angle(mask: np.ndarray) -> float:
    """Angle (degrees, in (-90, 90]) of the stripes of a binary map to the horizontal, from
    its strongest Fourier component (the wave vector is normal to the stripes)."""
    spec = np.abs(np.fft.fft2(mask - mask.mean()))
    spec[0, 0] = 0
    ky, kx = np.unravel_index(np.argmax(spec), spec.shape)
    n = mask.shape[0]
    ky, kx = (ky + n // 2) % n - n // 2, (kx + n // 2) % n - n // 2
    angle = math.degrees(math.atan2(ky, kx)) - 90.0   # y down: image angle
    return (angle + 90.0) % 180.0 - 90.0


@pytest.mark.parametrize('name, tilt', [('tilt22', 22.5), ('tilt67', 67.5)])
def test_tilted_stripes_draw_both_signs_at_their_angle(name, tilt):
    """A flipped +tilt image shows -tilt stripes: the family must draw both."""
    angles = [_stripe_angle(C.texture_mask(name, np.random.default_rng(k), 96, 8.0))
              for k in range(16)]
    assert all(abs(abs(a) - tilt) < 6 for a in angles), angles
    assert {math.copysign(1, a) for a in angles} == {1.0, -1.0}


def _spiral_turn(tex: np.ndarray, centre) -> int:
    """+1 / -1: which way the bands of a spiral map turn going outwards -- the sign of the
    angular lag (within +-15 deg) that best matches the map on the circle r = 23 to the map
    on r = 20 (a logarithmic spiral rotates by cot(a) ln(23/20) between them)."""
    t = np.radians(np.arange(0, 360, 0.5))

    def ring(r):
        ys = np.round(centre[0] + r * np.sin(t)).astype(int)
        xs = np.round(centre[1] + r * np.cos(t)).astype(int)
        return tex[ys, xs]
    inner, outer = ring(20.0), ring(23.0)
    lags = list(range(-30, 31))
    match = [np.mean(inner == np.roll(outer, lag)) for lag in lags]
    return int(np.sign(lags[int(np.argmax(match))]))


def test_spiral_draws_both_handednesses_and_a_flip_swaps_them():
    size, centre = 96, (47.5, 47.5)
    turns = set()
    for k in range(12):
        tex = C.texture_mask('spiral', np.random.default_rng(k), size, 6.0, centre)
        turn = _spiral_turn(tex, centre)
        assert turn != 0
        assert _spiral_turn(tex[:, ::-1], centre) == -turn
        turns.add(turn)
    assert turns == {1, -1}


# ----------------------------------------------------------------------------- config
def test_config_validation_and_fingerprint(monkeypatch):
    fp = TINY.fingerprint()
    assert len(fp) == 12 and int(fp, 16) >= 0
    same = ShapeCorpusConfig(image_size=48, num_classes=4, train_per_class=3, val_per_class=1,
                             object_area_range=[0.15, 0.45])
    assert same.fingerprint() == fp and same.object_area_range == (0.15, 0.45)
    assert dataclasses.replace(TINY, seed=1).fingerprint() != fp
    monkeypatch.setattr(sc, 'CORPUS_VERSION', sc.CORPUS_VERSION + 1)
    assert TINY.fingerprint() != fp
    for bad, match in ((dict(num_classes=97), 'num_classes'), (dict(num_classes=1), 'num_classes'),
                       (dict(image_size=16), 'image_size'), (dict(val_per_class=-1), 'per_class'),
                       (dict(object_area_range=(0.5, 0.2)), 'object_area_range'),
                       (dict(texture_contrast_range=(0.2, 1.5)), 'texture_contrast_range'),
                       (dict(max_outside=1.0), 'max_outside'),
                       (dict(max_distractors=-1), 'max_distractors')):
        with pytest.raises(ValueError, match=match):
            ShapeCorpusConfig(**bad)


def test_unknown_generator_knob_is_refused_naming_the_valid_ones(tmp_path):
    from wsss_core.datasets.shape_corpus_dataset import ShapeCorpus
    with pytest.raises(TypeError, match=r"num_clases.*valid:.*'num_classes'.*'train_per_class'"):
        corpus_config(num_clases=3)
    with pytest.raises(TypeError, match='num_clases'):
        ShapeCorpus(generator=dict(num_clases=3), root=tmp_path)
    assert not (tmp_path / 'shape_corpus').exists()


# ----------------------------------------------------------------------------- cache
def _arrays(root):
    return {p.name: np.load(p) for p in sorted(root.glob('*.npy'))}


def test_cache_is_identical_for_any_worker_count(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, 'CHUNK', 5)   # several chunks per split
    one = cache.ensure_corpus(TINY, root=tmp_path / 'one', workers=1, progress=False)
    two = cache.ensure_corpus(TINY, root=tmp_path / 'two', workers=2, progress=False)
    assert one.name == two.name == TINY.fingerprint()
    a, b = _arrays(one), _arrays(two)
    assert sorted(a) == ['train_images.npy', 'train_labels.npy', 'val_images.npy',
                         'val_labels.npy']
    for name in a:
        assert a[name].dtype == b[name].dtype and np.array_equal(a[name], b[name]), name
    assert a['train_images.npy'].shape == (12, 48, 48, 3)
    assert a['train_labels.npy'].dtype == np.int16
    assert a['train_labels.npy'].tolist() == [i % 4 for i in range(12)]
    assert a['val_labels.npy'].tolist() == [0, 1, 2, 3]
    img, label = generate_corpus_image(TINY, 1, 2)
    assert np.array_equal(a['val_images.npy'][2], img) and label == 2
    meta = cache.read_meta(one)
    assert meta['fingerprint'] == TINY.fingerprint() and meta['counts'] == dict(train=12, val=4)
    assert meta['images_per_class'] == dict(train=[3] * 4, val=[1] * 4)
    assert meta['class_names'] == list(CORPUS_CLASS_NAMES[:4])
    assert cache.is_complete(one, TINY)
    assert isinstance(np.load(one / 'train_images.npy', mmap_mode='r'), np.memmap)


def test_complete_cache_is_reused_without_regenerating(tmp_path, monkeypatch):
    root = cache.ensure_corpus(TINY, root=tmp_path, workers=1, progress=False)
    stamp = {p: p.stat().st_mtime_ns for p in root.iterdir()}

    def boom(*args, **kwargs):
        raise AssertionError('regenerated a complete corpus')
    monkeypatch.setattr(cache, 'generate_into', boom)
    assert cache.ensure_corpus(TINY, root=tmp_path, workers=1, progress=False) == root
    assert {p: p.stat().st_mtime_ns for p in root.iterdir()} == stamp


def test_env_var_sets_the_default_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('WSSS_CACHE', str(tmp_path / 'env'))
    assert cache.corpus_dir(TINY) == tmp_path / 'env' / 'shape_corpus' / TINY.fingerprint()


def test_interrupted_generation_leaves_nothing_complete_looking(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):   # every image written, killed before meta.json
        raise KeyboardInterrupt
    monkeypatch.setattr(cache, '_meta', interrupted)
    with pytest.raises(KeyboardInterrupt):
        cache.ensure_corpus(TINY, root=tmp_path, workers=1, progress=False)
    final = cache.corpus_dir(TINY, tmp_path)
    assert not final.exists() and not cache.is_complete(final, TINY)
    assert not list(final.parent.glob('.*.partial-*'))
    # leftovers of a killed run: a partial dir and a final dir without meta.json
    partial = final.parent / f'.{final.name}.partial-killed'
    partial.mkdir()
    final.mkdir()
    (final / 'train_images.npy').write_bytes(b'junk')
    monkeypatch.undo()
    root = cache.ensure_corpus(TINY, root=tmp_path, workers=1, progress=False)
    assert root == final and cache.is_complete(root, TINY) and not partial.exists()
    # a truncated array or a stale version is not complete
    path = root / 'val_images.npy'
    data = path.read_bytes()
    path.write_bytes(data[:-1])
    assert not cache.is_complete(root, TINY)
    path.write_bytes(data)
    assert cache.is_complete(root, TINY)
    meta = cache.read_meta(root)
    meta['corpus_version'] -= 1
    (root / 'meta.json').write_text(json.dumps(meta))
    assert not cache.is_complete(root, TINY)


def test_an_empty_split_is_written_and_read(tmp_path):
    cfg = dataclasses.replace(TINY, val_per_class=0)
    root = cache.ensure_corpus(cfg, root=tmp_path, workers=1, progress=False)
    assert cache.is_complete(root, cfg)
    assert np.load(root / 'val_images.npy').shape == (0, 48, 48, 3)


# ----------------------------------------------------------------------------- dataset
def test_dataset_through_a_classifier_pipeline(tmp_path, core_registered):
    import torch
    from wsss_core.datasets import build_dataset
    torch.manual_seed(0)
    pipeline = [dict(type='RandomHorizontalFlip', prob=0.5),
                dict(type='RandomPadCrop', size=48, pad=4),
                dict(type='PackInputs', keys=('img', 'labels'))]
    ds = build_dataset(dict(type='ShapeCorpus', generator=dict(
        image_size=48, num_classes=4, train_per_class=3, val_per_class=1), root=str(tmp_path),
        progress=False, workers=1), split='train', pipeline=pipeline, load_gt=False)
    assert len(ds) == 12 and ds.num_classes == 4
    assert ds.labels_array.tolist() == [i % 4 for i in range(12)]
    assert ds.class_names == CORPUS_CLASS_NAMES[:4] and ds.generator_config == TINY
    for i in (0, 7):
        s = ds[i]
        assert s['img_id'] == f'train_{i:06d}'
        assert s['img'].shape == (3, 48, 48) and s['img'].dtype == torch.uint8
        assert s['labels'].dtype == torch.float32 and s['labels'].tolist() == np.eye(4)[i % 4].tolist()
    raw = ds.load_sample(5)
    assert raw['label'] == 1 and raw['img'].flags.writeable
    assert np.array_equal(raw['img'], generate_corpus_image(TINY, 0, 5)[0])
    assert ds.metainfo == dict(classes=CORPUS_CLASS_NAMES[:4], num_classes=4)
    # a worker maps the file itself: pickling carries no pixels
    assert len(pickle.dumps(ds)) < 48 * 48 * 3
    clone = pickle.loads(pickle.dumps(ds))
    assert np.array_equal(clone.load_sample(5)['img'], raw['img'])
    val = build_dataset(dict(type='ShapeCorpus', generator=dict(
        image_size=48, num_classes=4, train_per_class=3, val_per_class=1), root=str(tmp_path),
        progress=False, workers=1), split='val', max_samples=3)
    assert val.img_ids == ['val_000000', 'val_000001', 'val_000002']
    with pytest.raises(ValueError, match="splits"):
        build_dataset(dict(type='ShapeCorpus', generator=dict(image_size=48, num_classes=4),
                           root=str(tmp_path)), split='test')
