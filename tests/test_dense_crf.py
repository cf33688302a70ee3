"""Dense CRF: known answers on flat colour regions, presets, overrides, the refiner, the pool."""
from __future__ import annotations

import builtins
import pickle
import sys

import numpy as np
import pytest

from wsss_core.refiners.dense_crf import (CRF_PRESETS, CRFParams, DenseCRF, cam_probs,
                                          crf_params, dense_crf, dense_crf_labels,
                                          import_densecrf, labels_unary, probs_unary,
                                          register_crf_preset)
from wsss_core.refiners.parallel import RefineChainJob, imap_images, map_images

pytest.importorskip('pydensecrf.densecrf')

H, W = 24, 32


def two_regions(h=H, w=W):
    """Left half red, right half blue; the truth is 0 on the left, 1 on the right."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (200, 40, 40)
    img[:, w // 2:] = (40, 40, 200)
    truth = np.zeros((h, w), np.int64)
    truth[:, w // 2:] = 1
    return img, truth


def noisy_probs(truth, flip=0.3, conf=0.7, seed=0):
    """A 2-label unary right with probability ``conf`` and flipped on a ``flip`` fraction."""
    rng = np.random.default_rng(seed)
    p0 = np.where(truth == 0, conf, 1 - conf)
    p0 = np.where(rng.random(truth.shape) < flip, 1 - p0, p0).astype(np.float32)
    return np.stack([p0, 1 - p0])


@pytest.fixture
def plugin_presets():
    """The presets the deeplab, getam and edam plugins register (their modules imported, as
    loading the plugins would)."""
    for plugin in ('deeplab', 'getam', 'edam'):
        pytest.importorskip(f'wsss_{plugin}.crf_preset')


# ----------------------------------------------------------------------------- core functions
@pytest.mark.parametrize('preset', ['psa', 'deeplab', 'getam', 'edam'])
def test_noisy_unary_over_two_flat_regions_comes_back_clean(preset, plugin_presets):
    img, truth = two_regions()
    probs = noisy_probs(truth)
    assert (probs.argmax(0) != truth).mean() > 0.2  # the unary alone is badly wrong
    q = dense_crf(img, probs, **crf_params(preset).kernels())
    assert q.shape == probs.shape and q.dtype == np.float32
    np.testing.assert_allclose(q.sum(0), 1.0, atol=1e-4)
    assert (q.argmax(0) == truth).all()


def test_without_pairwise_terms_the_crf_keeps_the_unary_argmax():
    img, truth = two_regions()
    probs = noisy_probs(truth)
    q = dense_crf(img, probs, gauss_compat=0, bilat_compat=0, iterations=5)
    assert (q.argmax(0) == probs.argmax(0)).all()


def test_bilateral_kernel_follows_colour_edges_not_the_unary():
    # The unary puts the boundary 4 px left of the colour edge; the bilateral term moves it.
    img, truth = two_regions()
    shifted = np.zeros_like(truth)
    shifted[:, W // 2 - 4:] = 1
    probs = np.stack([np.where(shifted == 0, 0.6, 0.4), np.where(shifted == 1, 0.6, 0.4)])
    q = dense_crf(img, probs.astype(np.float32), **crf_params('psa').kernels())
    assert (q.argmax(0) == truth).all()


def test_label_unary_cleans_noisy_labels():
    img, truth = two_regions()
    rng = np.random.default_rng(1)
    noisy = np.where(rng.random(truth.shape) < 0.25, 1 - truth, truth)
    params = crf_params('irn')
    q = dense_crf_labels(img, noisy, 2, **vars(params))
    assert (q.argmax(0) == truth).all()


def test_label_unary_values_and_zero_unsure():
    u = labels_unary(np.array([[0, 2]]), 3, gt_prob=0.7)
    np.testing.assert_allclose(u[:, 0], -np.log([0.7, 0.15, 0.15]), rtol=1e-6)
    np.testing.assert_allclose(u[:, 1], -np.log([0.15, 0.15, 0.7]), rtol=1e-6)
    u = labels_unary(np.array([[0, 1, 3]]), 3, gt_prob=0.7, zero_unsure=True)
    np.testing.assert_allclose(u[:, 0], -np.log([1 / 3] * 3), rtol=1e-6)  # unsure
    np.testing.assert_allclose(u[:, 1], -np.log([0.7, 0.15, 0.15]), rtol=1e-6)
    np.testing.assert_allclose(u[:, 2], -np.log([0.15, 0.15, 0.7]), rtol=1e-6)
    with pytest.raises(ValueError, match=r'outside 0\.\.2'):
        labels_unary(np.array([[3]]), 3, gt_prob=0.7)
    with pytest.raises(ValueError, match='gt_prob'):
        labels_unary(np.array([[0]]), 3, gt_prob=1.0)


def test_probs_unary_clips_at_1e5_and_rejects_nan():
    u = probs_unary(np.array([[[0.0, 0.5, 2.0]]], np.float32))
    np.testing.assert_allclose(u[0], [-np.log(1e-5), -np.log(0.5), 0.0], rtol=1e-6)
    assert u.flags.c_contiguous and u.dtype == np.float32
    with pytest.raises(ValueError, match='NaN'):
        probs_unary(np.full((2, 1, 1), np.nan, np.float32))


def test_bad_inputs_are_named():
    img, truth = two_regions()
    probs = noisy_probs(truth)
    with pytest.raises(ValueError, match='uint8'):
        dense_crf(img.astype(np.float32), probs)
    with pytest.raises(ValueError, match='image is'):
        dense_crf(img[:10], probs)
    assert (dense_crf(img, probs[:1]) == 1).all()  # one label: nothing to infer


# ----------------------------------------------------------------------------- presets
def test_presets_have_the_published_values(plugin_presets):
    assert CRF_PRESETS['psa'] == CRFParams(3, 3, 80, 13, 10, 10)
    assert CRF_PRESETS['deeplab'] == CRFParams(1, 3, 67, 3, 4, 10)
    assert CRF_PRESETS['getam'] == CRFParams(3, 3, 83, 5, 4, 20)
    assert CRF_PRESETS['irn'] == CRFParams(3, 3, 50, 5, 10, 10, gt_prob=0.7)
    assert CRF_PRESETS['edam'] == CRFParams(3, 3, 80, 13, 10, 3)
    psa = CRF_PRESETS['psa']
    assert (psa.gauss_sxy, psa.gauss_compat, psa.bilat_sxy, psa.bilat_srgb, psa.bilat_compat,
            psa.iterations, psa.gt_prob) == (3, 3, 80, 13, 10, 10, None)
    assert {n: CRF_PRESETS.source(n) for n in ('psa', 'irn', 'deeplab', 'getam', 'edam')} == \
        dict(psa='core', irn='core', deeplab='deeplab', getam='getam', edam='edam')


def test_presets_are_a_registry_plugins_fill(monkeypatch):
    """A registered preset is found by crf_params and DenseCRF; the same registration again
    is a no-op, another value under a taken name an error naming who holds it; a preset of a
    plugin that is not loaded is an error naming the plugin to load."""
    monkeypatch.setattr(CRF_PRESETS, '_entries', dict(CRF_PRESETS._entries))  # undone after
    params = CRFParams(2, 3, 40, 7, 5, 4)
    assert register_crf_preset('test-only', params, source='tests') is params
    register_crf_preset('test-only', params, source='tests')
    assert crf_params('test-only', iterations=1) == CRFParams(2, 3, 40, 7, 5, 1)
    assert DenseCRF(preset='test-only').params == params
    with pytest.raises(ValueError, match="already registered by 'tests'"):
        register_crf_preset('test-only', params.replace(iterations=9), source='other')
    with pytest.raises(TypeError, match='CRFParams'):
        register_crf_preset('x', dict(gauss_sxy=1), source='tests')
    from wsss_core.plugin_loader import discovered_plugins
    CRF_PRESETS._entries.pop('getam', None)               # as before the plugin is loaded
    with pytest.raises(KeyError, match=r"preset 'getam'; registered: .*psa \(core\)"):
        crf_params('getam')
    if 'getam' in {r.name for r in discovered_plugins()}:
        with pytest.raises(KeyError, match="load the plugin 'getam'"):
            DenseCRF(preset='getam')
    with pytest.raises(KeyError, match='wsss-run --list-plugins'):
        crf_params('no-such-plugin-preset')


def test_overrides_change_only_what_is_named_and_unknown_names_fail(plugin_presets):
    p = crf_params('getam', iterations=5, bilat_srgb=7)
    assert p == CRFParams(3, 3, 83, 7, 4, 5)
    assert CRF_PRESETS['getam'].iterations == 20  # the table is not modified
    assert crf_params(None, **vars(CRF_PRESETS['deeplab'])) == CRF_PRESETS['deeplab']
    with pytest.raises(TypeError, match='bilat_rgb'):
        crf_params('psa', bilat_rgb=3)
    with pytest.raises(KeyError, match='registered'):
        crf_params('nope')
    refiner = DenseCRF(preset='deeplab', iterations=3, gauss_sxy=2)
    assert refiner.params == CRFParams(2, 3, 67, 3, 4, 3)


def fake_pydensecrf(monkeypatch) -> dict:
    """Replace pydensecrf by a recorder; returns the dict it records the calls in."""
    calls = {}

    class FakeCRF:
        def __init__(self, w, h, n):
            calls['size'] = (w, h, n)

        def setUnaryEnergy(self, u):
            calls['unary'] = u.shape

        def addPairwiseGaussian(self, **kw):
            calls['gauss'] = kw

        def addPairwiseBilateral(self, **kw):
            calls['bilat'] = {k: v for k, v in kw.items() if k != 'rgbim'}

        def inference(self, t):
            calls['t'] = t
            return np.full((calls['size'][2], calls['size'][0] * calls['size'][1]), 0.5)

    class FakeModule:
        DenseCRF2D = FakeCRF

    monkeypatch.setattr('wsss_core.refiners.dense_crf.import_densecrf', lambda: FakeModule)
    return calls


def test_overrides_reach_pydensecrf(monkeypatch):
    calls = fake_pydensecrf(monkeypatch)
    img, truth = two_regions()
    dense_crf(img, noisy_probs(truth), **crf_params('psa', bilat_srgb=7, iterations=4).kernels())
    assert calls == dict(size=(W, H, 2), unary=(2, H * W), gauss=dict(sxy=3.0, compat=3.0),
                         bilat=dict(sxy=80.0, srgb=7.0, compat=10.0), t=4)


def test_psa_scale_factor_divides_both_spatial_sdevs(monkeypatch, plugin_presets):
    # psa's crf_inference(img, probs, t, scale_factor): Gaussian sxy 3 / sf, bilateral
    # sxy 80 / sf, srgb 13 unchanged
    assert CRF_PRESETS['psa'].scale_factor == 1.0 == CRF_PRESETS['edam'].scale_factor
    assert 'scale_factor' not in crf_params('psa').kernels()       # factor 1: as before
    calls = fake_pydensecrf(monkeypatch)
    img, truth = two_regions()
    dense_crf(img, noisy_probs(truth), **crf_params('psa', scale_factor=2).kernels())
    assert calls['gauss'] == dict(sxy=1.5, compat=3.0)
    assert calls['bilat'] == dict(sxy=40.0, srgb=13.0, compat=10.0)
    dense_crf_labels(img, truth, 2, **vars(crf_params('irn', scale_factor=4)))
    assert calls['gauss']['sxy'] == 0.75 and calls['bilat']['sxy'] == 12.5
    with pytest.raises(ValueError, match='scale_factor'):
        crf_params('psa', scale_factor=0)


def test_refiner_at_scale_factor_2_equals_the_psa_kernels_halved_by_hand():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    img[:, W // 2:] //= 4                                   # a colour edge, texture both sides
    cams = rng.random((2, H, W)).astype(np.float32)
    sample = dict(img_id='x', img=img, cams=cams, class_ids=np.array([1, 4]))
    scaled = DenseCRF(preset='psa', scale_factor=2, keep_probs=True).refine(dict(sample))
    by_hand = dense_crf(img, cam_probs(cams), gauss_sxy=1.5, gauss_compat=3, bilat_sxy=40,
                        bilat_srgb=13, bilat_compat=10, iterations=10)
    assert np.array_equal(scaled['crf_probs'], by_hand)
    unscaled = DenseCRF(preset='psa', keep_probs=True).refine(dict(sample))
    assert not np.allclose(unscaled['crf_probs'], by_hand, atol=1e-3)


def test_refiner_names_the_image_whose_cams_hold_nan():
    img, truth = two_regions()
    cams = np.ones((1, H, W), np.float32)
    cams[0, 3, 4] = np.nan
    sample = dict(img_id='2007_000042', img=img, cams=cams, class_ids=np.array([0]))
    with pytest.raises(ValueError, match=r'DenseCRF on image 2007_000042: .*NaN or inf'):
        DenseCRF(preset='psa', bg='constant').refine(sample)


# ----------------------------------------------------------------------------- missing library
def test_missing_pydensecrf_says_how_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_crf(name, *args, **kwargs):
        if name.startswith('pydensecrf'):
            raise ImportError(f"No module named '{name}'")
        return real_import(name, *args, **kwargs)

    for mod in [m for m in sys.modules if m.startswith('pydensecrf')]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setattr(builtins, '__import__', no_crf)
    with pytest.raises(ImportError, match='pip install pydensecrf2'):
        import_densecrf()
    img, truth = two_regions()
    with pytest.raises(ImportError, match='pip install pydensecrf2'):
        dense_crf(img, noisy_probs(truth))


def test_missing_pydensecrf_via_sys_modules_none(monkeypatch):
    monkeypatch.setitem(sys.modules, 'pydensecrf', None)
    monkeypatch.setitem(sys.modules, 'pydensecrf.densecrf', None)
    with pytest.raises(ImportError, match='pip install pydensecrf2'):
        import_densecrf()


# ----------------------------------------------------------------------------- refiner
def cam_sample():
    """Two classes (ids 2 and 5) on a grey background; blurred CAMs spill over the edges."""
    import cv2
    h, w = 30, 40
    img = np.full((h, w, 3), 90, np.uint8)
    img[5:20, 4:16] = (230, 30, 30)    # object of class 2
    img[8:26, 24:36] = (30, 220, 30)   # object of class 5
    truth = np.zeros((h, w), np.uint8)
    truth[5:20, 4:16] = 3
    truth[8:26, 24:36] = 6
    cams = np.stack([cv2.GaussianBlur((truth == v).astype(np.float32), (0, 0), 3)
                     for v in (3, 6)])
    cams /= cams.max(axis=(1, 2), keepdims=True)
    return dict(img_id='x', img=img, cams=cams, class_ids=np.array([2, 5])), truth


def test_refiner_from_cams_snaps_to_the_objects():
    from wsss_core.evaluation.cam_labels import cam_to_label
    sample, truth = cam_sample()
    best_threshold = max((cam_to_label(sample['cams'], sample['class_ids'], t) == truth).mean()
                         for t in np.arange(0.05, 1.0, 0.05))
    assert best_threshold < 0.98  # no background threshold gets the shapes right
    label = DenseCRF(preset='psa', bg='power', bg_power=1)(dict(sample))['label']
    assert label.dtype == np.uint8
    assert (label == truth).all()


def test_refiner_background_power_and_constant():
    sample, _ = cam_sample()
    cams, ids = sample['cams'], sample['class_ids']
    no_pairwise = dict(gauss_compat=0, bilat_compat=0)  # the label is then the unary's argmax
    values = np.array([0, 3, 6])
    for alpha in (1, 4, 32):
        label = DenseCRF(preset='psa', bg_power=alpha, **no_pairwise)(dict(sample))['label']
        bg = (1 - cams.max(0)) ** alpha
        np.testing.assert_array_equal(label, values[np.concatenate([bg[None], cams]).argmax(0)])
    weak = DenseCRF(preset='psa', bg_power=32, **no_pairwise)(dict(sample))['label']
    strong = DenseCRF(preset='psa', bg_power=4, **no_pairwise)(dict(sample))['label']
    assert (weak > 0).sum() > (strong > 0).sum()  # psa "ha" (32) keeps more foreground
    from wsss_core.evaluation.cam_labels import cam_to_label
    const = DenseCRF(preset='psa', bg='constant', bg_score=0.5, **no_pairwise)(dict(sample))
    np.testing.assert_array_equal(const['label'], cam_to_label(cams, ids, 0.5))
    probs = cam_probs(cams, 'power', 2.0)
    np.testing.assert_allclose(probs[0], (1 - cams.max(0)) ** 2, rtol=1e-5)
    np.testing.assert_array_equal(probs[1:], cams)


def test_refiner_without_classes_is_all_background():
    sample, _ = cam_sample()
    sample.update(cams=np.zeros((0, 30, 40), np.float32), class_ids=np.zeros(0, np.int64))
    assert (DenseCRF()(sample)['label'] == 0).all()


def test_refiner_label_unary_cleans_label_and_keeps_ignore():
    sample, truth = cam_sample()
    rng = np.random.default_rng(0)
    noisy = truth.copy()
    flip = rng.random(truth.shape) < 0.15
    noisy[flip] = rng.choice(np.array([0, 3, 6], np.uint8), flip.sum())
    noisy[0:3, 0:3] = 255
    sample['label'] = noisy
    out = DenseCRF(preset='irn', unary='labels')(dict(sample))['label']
    assert (out[0:3, 0:3] == 255).all()
    ok = out != 255
    assert (out[ok] == truth[ok]).mean() > 0.99 > (noisy[ok] == truth[ok]).mean()
    sample['label'] = noisy
    filled = DenseCRF(preset='irn', unary='labels', ignore='fill')(dict(sample))['label']
    assert (filled == truth).all()


def test_refiner_label_unary_errors():
    with pytest.raises(ValueError, match='gt_prob'):
        DenseCRF(preset='psa', unary='labels')
    assert DenseCRF(preset='psa', unary='labels', gt_prob=0.6).params.gt_prob == 0.6
    sample, _ = cam_sample()
    with pytest.raises(KeyError, match='earlier refiner'):
        DenseCRF(preset='irn', unary='labels')(sample)
    with pytest.raises(KeyError, match='img'):
        DenseCRF()(dict(img_id='y', cams=sample['cams'], class_ids=sample['class_ids']))
    with pytest.raises(ValueError, match='unary'):
        DenseCRF(unary='softmax')


def test_refiner_builds_from_the_registry(core_registered, plugin_presets):
    from wsss_core.registry import LABEL_REFINERS, build
    refiner = build(dict(type='DenseCRF', preset='getam', iterations=7), LABEL_REFINERS)
    assert isinstance(refiner, DenseCRF) and refiner.params.iterations == 7
    assert pickle.loads(pickle.dumps(refiner)).params == refiner.params


# ----------------------------------------------------------------------------- process pool
def crf_item(seed: int) -> np.ndarray:
    """Module level, so spawn workers can unpickle it."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    probs = rng.random((3, 12, 16)).astype(np.float32)
    return dense_crf(img, probs, iterations=3)


def test_pool_results_equal_single_process():
    seeds = list(range(6))
    inline = map_images(crf_item, seeds, workers=0, progress=False)
    pooled = map_images(crf_item, seeds, workers=2, progress=False, chunksize=2)
    assert len(pooled) == len(seeds)
    for a, b in zip(inline, pooled):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(inline[0], inline[1])  # results really differ per item (order)


def worker_pid(_) -> int:
    import os
    return os.getpid()


def test_pool_runs_in_other_processes_and_inline_here():
    import os
    assert set(map_images(worker_pid, range(4), workers=1, progress=False)) == {os.getpid()}
    pids = set(map_images(worker_pid, range(4), workers=2, progress=False, chunksize=1))
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


def test_pool_runs_a_refiner_on_samples():
    sample, truth = cam_sample()
    samples = [dict(sample, img_id=str(i), cams=sample['cams'] * (0.5 + 0.1 * i))
               for i in range(4)]
    refiner = DenseCRF(preset='psa', bg_power=2)
    inline = map_images(refiner, [dict(s) for s in samples], workers=1, progress=False)
    pooled = map_images(refiner, [dict(s) for s in samples], workers=2, progress=False)
    assert [s['img_id'] for s in pooled] == ['0', '1', '2', '3']
    for a, b in zip(inline, pooled):
        np.testing.assert_array_equal(a['label'], b['label'])


def test_pool_rejects_unpicklable_fn_and_bad_workers():
    with pytest.raises(TypeError, match='lambda'):
        map_images(lambda x: x, [1, 2, 3], workers=2, progress=False)
    with pytest.raises(ValueError, match='workers'):
        map_images(crf_item, [1], workers=-1)
    assert map_images(lambda x: 2 * x, [1, 2, 3], workers=1, progress=False) == [2, 4, 6]


def test_imap_is_lazy_and_ordered():
    seen = []
    it = imap_images(seen.append, [1, 2, 3], workers=0, progress=False)
    assert seen == []
    next(it)
    assert seen == [1]


def test_worker_errors_propagate():
    with pytest.raises(ValueError, match='probs must be'):
        map_images(dense_crf_bad_item, [0, 1], workers=2, progress=False)


def dense_crf_bad_item(i):
    return dense_crf(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.float32))


# ----------------------------------------------------------------------------- refine chain job
class _Records:
    def __init__(self, ids):
        from types import SimpleNamespace
        self.records = [SimpleNamespace(img_id=i) for i in ids]
        self.num_classes = 6

    def load_sample(self, index):
        sample, _ = cam_sample()
        return dict(img_id=self.records[index].img_id, img=sample['img'])


def test_refine_chain_job_writes_checked_labels(tmp_path):
    from wsss_core.io import read_label_png, save_cam
    sample, truth = cam_sample()
    for img_id in ('a', 'b'):
        save_cam(tmp_path / 'cams' / f'{img_id}.npz', sample['cams'], sample['class_ids'])
    from wsss_core.refiners.background_threshold import BackgroundThreshold
    job = RefineChainJob(_Records(['a', 'b']), [BackgroundThreshold(0.2),
                                                 DenseCRF(preset='irn', unary='labels')],
                         tmp_path / 'cams', tmp_path / 'labels')
    assert job.needs == {'img'}
    assert [job(i) for i in range(2)] == ['a', 'b']
    label = read_label_png(tmp_path / 'labels' / 'a.png', num_classes=6)
    assert (label == truth).mean() > 0.95
    job.dataset.num_classes = 3  # class 5 -> value 6 is now out of range
    from wsss_core.io import DataFileError
    with pytest.raises(DataFileError, match='pseudo label of a'):
        job(0)


# ----------------------------------------------------------------------------- keep_probs
def test_refiner_keep_probs_leaves_the_marginals_for_a_following_refiner(plugin_presets):
    sample, truth = cam_sample()
    plain = DenseCRF(preset='edam')(dict(sample))
    assert 'crf_probs' not in plain                     # off by default: nothing else changes
    kept = DenseCRF(preset='edam', keep_probs=True)(dict(sample))
    q = kept['crf_probs']                               # [bg, class 2, class 5]
    expected = dense_crf(sample['img'], cam_probs(sample['cams'], 'power', 1.0),
                         **CRF_PRESETS['edam'].kernels())
    assert q.shape == (3, 30, 40) and q.dtype == np.float32
    np.testing.assert_array_equal(q, expected)
    np.testing.assert_array_equal(kept['label'], np.array([0, 3, 6], np.uint8)[q.argmax(0)])
    np.testing.assert_array_equal(kept['label'], plain['label'])
    empty = dict(sample, cams=np.zeros((0, 30, 40), np.float32), class_ids=np.zeros(0, np.int64))
    out = DenseCRF(keep_probs=True)(empty)
    assert out['crf_probs'].shape == (1, 30, 40) and (out['crf_probs'] == 1).all()
    assert (out['label'] == 0).all()
    with pytest.raises(ValueError, match='keep_probs'):
        DenseCRF(preset='irn', unary='labels', keep_probs=True)
