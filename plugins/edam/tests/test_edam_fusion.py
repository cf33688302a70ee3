"""EDAM's saliency fusion (``docs/methods/edam.md#8-inference-and-pseudo-labels``): the truth table
on crafted pixels, agreement with a literal (C + 1)-plane transcription, the presets, and the
three routes of step 5 as refiner chains --
constant background = BackgroundThreshold, CRF = DenseCRF(preset='edam'), CRF + saliency
writes the *fused* label (not the CRF argmax the reference saved)."""
from __future__ import annotations

import numpy as np
import pytest

from wsss_edam.testing import TINY_GENERATOR, registered  # noqa: F401 (fixture)


@pytest.fixture(scope='module', autouse=True)
def plugins(registered):  # noqa: F811  (the core and the plugin, as wsss-run loads them)
    return registered


def literal_fuse(scores, class_ids, sal, theta, alpha, beta, num_classes):
    """The fusion pseudo-code of docs/methods/edam.md §8, line by line, over all C + 1 planes."""
    t = np.zeros((num_classes + 1,) + sal.shape)
    for k, c in enumerate(class_ids):
        t[c + 1] = scores[k]
    bg = np.where(sal <= theta * 100, 1.0, 0.0)
    t[t < alpha] = -2
    t[t > beta] = 2
    t[0] = bg
    return t.argmax(0).astype(np.uint8)


# One row of pixels, image classes 2 and 0 (given in that order: labels 3 and 1).
# Preset no_crf: theta 0.2 (background iff S <= 20), alpha 0.25, beta 0.95.
#          p0   p1   p2   p3   p4    p5    p6    p7    p8   p9   p10   p11
SAL = [255, 255, 21, 20, 0, 0, 0, 255, 255, 255, 100, 0]
A2 = [0.3, 0.2, 0.7, 0.5, 0.0, 0.99, 0.0, 0.0, 0.4, 0.0, 0.26, 0.0]
A0 = [0.6, 0.1, 0.5, 0.9, 0.96, 0.97, 0.95, 0.25, 0.4, 0.0, 0.24, 1.0]
# p0  salient, A0 best                                 -> class 0 -> 1
# p1  salient, both < alpha -> -2, -2 < bg 0            -> background (alpha suppression)
# p2  S = 21 > 20: salient, A2 best                     -> class 2 -> 3
# p3  S = 20 <= 20: bg 1 > A0 .9                        -> background (theta boundary)
# p4  non-salient, A0 .96 > beta -> 2 > 1               -> class 0 (beta pop-up)
# p5  both > beta -> tie at 2 -> lowest class id wins   -> class 0 (although A2 > A0)
# p6  A0 = .95 is not > beta: .95 < bg 1                -> background
# p7  A0 = .25 is not < alpha: .25 > bg 0               -> class 0
# p8  tie A0 = A2 = .4                                  -> lowest class id -> 1
# p9  salient, nothing                                  -> background
# p10 A0 .24 dropped, A2 .26 kept                       -> class 2 -> 3
# p11 non-salient, A0 = 1 > beta                        -> class 0
EXPECTED = [1, 0, 3, 0, 1, 1, 0, 1, 1, 0, 3, 1]


def crafted():
    return (np.stack([np.array([A2]), np.array([A0])]).astype(np.float32),
            [2, 0], np.array([SAL], np.uint8))


def test_truth_table_of_the_no_crf_preset():
    from wsss_edam.saliency_fusion import EDAM_FUSION_PRESETS, edam_fuse
    scores, ids, sal = crafted()
    label = edam_fuse(scores, ids, sal, **EDAM_FUSION_PRESETS['no_crf'])
    assert label.dtype == np.uint8 and label[0].tolist() == EXPECTED
    assert literal_fuse(scores, ids, sal, num_classes=20,
                        **EDAM_FUSION_PRESETS['no_crf'])[0].tolist() == EXPECTED
    # class order does not matter
    assert edam_fuse(scores[::-1], ids[::-1], sal,
                     **EDAM_FUSION_PRESETS['no_crf'])[0].tolist() == EXPECTED


def test_ties_with_the_background_plane_go_to_the_background():
    from wsss_edam.saliency_fusion import edam_fuse
    scores, ids, sal = crafted()
    # alpha 0: p9 (salient, scores 0) ties 0 = 0 with the background plane -> background;
    # p1's .1/.2 now survive -> class 2 (.2 > .1)
    got = edam_fuse(scores, ids, sal, theta=0.2, alpha=0.0, beta=0.95)[0]
    assert got[9] == 0 and got[1] == 3
    # beta 1: p11 (non-salient, A0 = 1) is not > 1 and ties bg 1 -> background
    got = edam_fuse(scores, ids, sal, theta=0.2, alpha=0.25, beta=1.0)[0]
    assert got[11] == 0 and got[4] == 0 and got[5] == 0


def test_truth_table_of_the_crf_preset():
    from wsss_edam.saliency_fusion import EDAM_FUSION_PRESETS, edam_fuse
    assert EDAM_FUSION_PRESETS['crf'] == dict(theta=0.2, alpha=1e-6, beta=0.99999)
    assert EDAM_FUSION_PRESETS['no_crf'] == dict(theta=0.2, alpha=0.25, beta=0.95)
    #        q0     q1     q2        q3        q4   q5
    sal = np.array([[255, 255, 0, 0, 20, 21]], np.uint8)
    p = np.array([[[5e-7, 2e-6, 0.99999, 0.999995, 0.5, 0.5]]])
    # q0 < alpha -> bg; q1 kept; q2 = beta not above; q3 above beta; q4 S = 20 bg; q5 salient
    got = edam_fuse(p, [4], sal, **EDAM_FUSION_PRESETS['crf'])[0].tolist()
    assert got == [0, 5, 0, 5, 0, 5]


@pytest.mark.parametrize('seed', range(4))
def test_equals_the_literal_all_planes_rule_on_random_maps(seed):
    from wsss_edam.saliency_fusion import edam_fuse
    rng = np.random.default_rng(seed)
    num_classes, shape = 6, (9, 11)
    for _ in range(20):
        ids = rng.choice(num_classes, size=rng.integers(0, 4), replace=False).tolist()
        scores = rng.choice([0.0, 0.1, 0.25, 0.5, 0.95, 0.99, 1.0],
                            size=(len(ids),) + shape)       # few levels: many ties
        sal = rng.choice([0, 10, 20, 21, 40, 255], size=shape).astype(np.uint8)
        theta, alpha, beta = (rng.choice([0.1, 0.2, 0.4]), rng.choice([0.0, 1e-6, 0.25]),
                              rng.choice([0.95, 0.99, 1.0]))
        np.testing.assert_array_equal(
            edam_fuse(scores, ids, sal, theta, alpha, beta),
            literal_fuse(scores, ids, sal, theta, alpha, beta, num_classes))


def test_bad_inputs_are_refused():
    from wsss_edam.saliency_fusion import edam_fuse
    scores, ids, sal = crafted()
    with pytest.raises(ValueError, match='saliency size'):
        edam_fuse(scores, ids, sal[:, :5], 0.2, 0.25, 0.95)
    with pytest.raises(ValueError, match='repeat'):
        edam_fuse(scores, [0, 0], sal, 0.2, 0.25, 0.95)
    with pytest.raises(ValueError, match='NaN'):
        edam_fuse(scores * np.nan, ids, sal, 0.2, 0.25, 0.95)


# ----------------------------------------------------------------------------- refiner
def test_refiner_presets_and_overrides():
    from wsss_core.registry import LABEL_REFINERS, build
    from wsss_edam.saliency_fusion import EDAMSaliencyFusion
    assert EDAMSaliencyFusion().params == dict(theta=0.2, alpha=0.25, beta=0.95)
    assert EDAMSaliencyFusion(scores='crf_probs').params == dict(theta=0.2, alpha=1e-6,
                                                                 beta=0.99999)
    assert EDAMSaliencyFusion(preset='crf').params['beta'] == 0.99999
    fusion = build(dict(type='EDAMSaliencyFusion', preset='no_crf', theta=0.3, beta=0.9),
                   LABEL_REFINERS)
    assert fusion.params == dict(theta=0.3, alpha=0.25, beta=0.9)
    assert fusion.needs == ('saliency',)
    with pytest.raises(KeyError, match='presets'):
        EDAMSaliencyFusion(preset='nope')
    with pytest.raises(ValueError, match='scores'):
        EDAMSaliencyFusion(scores='probs')


def test_refiner_on_cams_from_the_dataset_or_a_source():
    from wsss_edam.saliency_fusion import EDAMSaliencyFusion
    scores, ids, sal = crafted()
    sample = dict(img_id='x', cams=scores, class_ids=np.array(ids), saliency=sal)
    assert EDAMSaliencyFusion()(dict(sample))['label'][0].tolist() == EXPECTED

    class Source:
        needs = ('img',)

        def __call__(self, img_id, img):
            return sal

    fusion = EDAMSaliencyFusion(source=Source())
    assert fusion.needs == ('img',)
    no_sal = dict(sample, img=np.zeros((1, 12, 3), np.uint8), saliency=None)
    assert fusion(no_sal)['label'][0].tolist() == EXPECTED
    with pytest.raises(KeyError, match='saliency'):
        EDAMSaliencyFusion()(dict(sample, saliency=None))
    # CAMs at another size are resized to the saliency's
    big = dict(sample, saliency=np.repeat(np.repeat(sal, 2, 0), 2, 1))
    assert EDAMSaliencyFusion()(big)['label'].shape == (2, 24)


def test_refiner_on_crf_probs_needs_them():
    from wsss_edam.saliency_fusion import EDAMSaliencyFusion, edam_fuse
    scores, ids, sal = crafted()
    probs = np.concatenate([np.full((1, 1, 12), 0.5), scores])
    sample = dict(img_id='x', cams=scores, class_ids=np.array(ids), saliency=sal)
    with pytest.raises(KeyError, match='keep_probs=True'):
        EDAMSaliencyFusion(scores='crf_probs')(dict(sample))
    got = EDAMSaliencyFusion(scores='crf_probs')(dict(sample, crf_probs=probs))['label']
    np.testing.assert_array_equal(got, edam_fuse(scores, ids, sal, 0.2, 1e-6, 0.99999))
    with pytest.raises(ValueError, match='background \\+ 2 classes'):
        EDAMSaliencyFusion(scores='crf_probs')(dict(sample, crf_probs=scores))


# ----------------------------------------------------------------------------- routes
@pytest.mark.parametrize('theta', [0.25, 0.5])
def test_route_a_constant_background_is_the_core_background_threshold(theta):
    """No saliency, no CRF: EDAM's argmax over [theta, C class planes] (absent classes 0)
    equals BackgroundThreshold(theta) on MakeCAMs's CAMs (class ids ascending), ties
    included: background wins a tie with theta, the lower class id a tie between classes."""
    from wsss_core.refiners import BackgroundThreshold
    rng = np.random.default_rng(0)
    num_classes, shape = 5, (8, 9)
    for _ in range(20):
        ids = sorted(rng.choice(num_classes, size=rng.integers(0, 4), replace=False).tolist())
        cams = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], size=(len(ids),) + shape)
        t = np.zeros((num_classes + 1,) + shape)
        for k, c in enumerate(ids):
            t[c + 1] = cams[k]
        t[0] = theta
        edam = t.argmax(0)
        core = BackgroundThreshold(threshold=theta)(
            dict(img_id='x', cams=cams.astype(np.float32), class_ids=np.array(ids)))['label']
        np.testing.assert_array_equal(core, edam)


def test_route_b_crf_is_the_core_dense_crf_edam_preset():
    from wsss_core.refiners.dense_crf import CRF_PRESETS, DenseCRF
    crf = DenseCRF(preset='edam')
    assert crf.params == CRF_PRESETS['psa'].replace(iterations=3)
    assert (crf.params.gauss_sxy, crf.params.gauss_compat) == (3, 3)
    assert (crf.params.bilat_sxy, crf.params.bilat_srgb, crf.params.bilat_compat) == (80, 13, 10)
    assert crf.unary == 'probs' and crf.bg == 'power' and crf.bg_power == 1.0  # (1 - max)^1


DATA = dict(type='SyntheticShapes', generator=dict(TINY_GENERATOR), progress=False)


def blurred_cams(gt, class_ids, rng):
    """Imperfect CAMs: each class's mask blurred, shifted and noisy, max-normalised."""
    import cv2
    maps = []
    for c in class_ids:
        m = cv2.GaussianBlur((gt == c + 1).astype(np.float32), (0, 0), 2.5)
        m = np.roll(m, 2, axis=1) + 0.15 * rng.random(gt.shape)
        maps.append(m / m.max())
    return np.stack(maps).astype(np.float32) if maps else np.zeros((0,) + gt.shape, np.float32)


def test_route_c_crf_then_saliency_writes_the_fused_label(tmp_path):
    """RefineLabels with [DenseCRF(edam, keep_probs), EDAMSaliencyFusion(crf_probs)] writes
    edam_fuse(CRF probabilities) -- not the CRF's own argmax, which the reference saved."""
    from mmengine.config import Config

    from wsss_core.datasets import build_dataset
    from wsss_core.io import load_cam, read_label_png, save_cam
    from wsss_core.pipeline.manifest import write_manifest
    from wsss_core.pipeline.refine_labels import RefineLabels
    from wsss_core.pipeline.stage import StageContext
    from wsss_core.refiners.dense_crf import CRF_PRESETS, cam_probs, dense_crf
    from wsss_edam.saliency_fusion import EDAM_FUSION_PRESETS, edam_fuse

    dataset = build_dataset(DATA, split='train')
    rng = np.random.default_rng(0)
    for i, rec in enumerate(dataset.records):
        gt = dataset.load_sample(i)['gt_seg']
        save_cam(tmp_path / 'cams' / 'cams' / f'{rec.img_id}.npz',
                 blurred_cams(gt, rec.class_ids, rng), rec.class_ids)
    write_manifest(tmp_path / 'cams', dict(artifacts=dict(cams='cams', split='train')))
    stage = RefineLabels('labels', cams='cams', refiners=[
        dict(type='DenseCRF', preset='edam', keep_probs=True),
        dict(type='EDAMSaliencyFusion', scores='crf_probs')])
    ctx = StageContext(cfg=Config(dict(data=DATA)), work_dir=tmp_path,
                       stage_dir=tmp_path / 'labels', progress=False)
    assert stage.run(ctx)['counts']['images'] == len(dataset)

    differs = 0
    for i, rec in enumerate(dataset.records):
        raw = dataset.load_sample(i)
        cams, ids = load_cam(tmp_path / 'cams' / 'cams' / f'{rec.img_id}.npz')
        q = dense_crf(raw['img'], cam_probs(cams, 'power', 1.0), **CRF_PRESETS['edam'].kernels())
        fused = edam_fuse(q[1:], ids, raw['saliency'], **EDAM_FUSION_PRESETS['crf'])
        written = read_label_png(tmp_path / 'labels' / 'labels' / f'{rec.img_id}.png',
                                 dataset.num_classes)
        np.testing.assert_array_equal(written, fused)
        crf_argmax = np.concatenate([[0], ids + 1])[q.argmax(0)]
        differs += int((written != crf_argmax).any())
    assert differs > 0  # the saliency rules did change labels: the PNG is not the CRF argmax
