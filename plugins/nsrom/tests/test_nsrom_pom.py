"""NSROM's potential object mining (``docs/methods/nsrom.md`` §3.6 step B) on crafted maps, and
its refiner in a RefineLabels chain after OAAProxyLabels with the plain CAMs as
``extra_cams``."""
from __future__ import annotations

import numpy as np
import pytest
from mmengine.config import Config

from wsss_core.testing import tiny_classify_stage
from wsss_nsrom.testing import TINY_GENERATOR, registered  # noqa: F401 (fixture)

# Each crafted CAM spans exactly [0, 1], so after the min-max re-normalisation its values
# are v / (1 + 1e-8): every comparison below is the same on v.
LABEL = np.array([[1, 1, 0, 0],
                  [1, 0, 0, 255],
                  [0, 0, 0, 0]], np.uint8)
# class 0 (label value 1): present in LABEL at (0,0) .9, (0,1) .5, (1,0) .6
CAM0 = np.array([[0.9, 0.5, 0.7, 0.3],
                 [0.6, 0.4, 0.8, 0.9],
                 [0.0, 1.0, 0.1, 0.2]])
# t0 = median(.9, .5, .6) = .6; A > .6 at (0,0) (0,2) (1,2) (1,3) (2,1); the background
# ones, (0,2) (1,2) (2,1), become 255; (0,0) stays class 1 and (1,3) was already ignore.
EXPECTED_PRESENT = np.array([[1, 1, 255, 0],
                             [1, 0, 255, 255],
                             [0, 255, 0, 0]], np.uint8)
# class 1 (label value 2): missing from LABEL -> fallback.  H = {A > .3} = .35 .4 .5 .6 .7 .8
# .9 .95 1 (9 values), median(H) = .7; {A > .7} = .8 .9 .95 1, median = (.9 + .95) / 2 =
# .925; hit where A > .925: (0,3) and (2,3).  (0,3) is background -> 255; (2,3) too.
CAM1 = np.array([[0.0, 0.1, 0.2, 0.95],
                 [0.35, 0.4, 0.5, 0.6],
                 [0.7, 0.8, 0.9, 1.0]])
EXPECTED_MISSING = np.array([[1, 1, 0, 255],
                             [1, 0, 0, 255],
                             [0, 0, 0, 255]], np.uint8)


def pom(*args, **kw):
    from wsss_nsrom.potential_object_mining import potential_object_mining
    return potential_object_mining(*args, **kw)


# ----------------------------------------------------------------------------- the rule
def test_present_class_threshold_is_the_median_inside_its_label():
    label = LABEL.copy()
    out = pom(label, CAM0[None], [0])
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, EXPECTED_PRESENT)
    np.testing.assert_array_equal(label, LABEL)  # the input is not modified


def test_the_cam_scale_does_not_matter():
    np.testing.assert_array_equal(pom(LABEL, (3.0 + 7.0 * CAM0)[None], [0]), EXPECTED_PRESENT)


def test_missing_class_uses_the_median_of_the_upper_half_of_the_high_values():
    from wsss_nsrom.potential_object_mining import pom_threshold
    a = CAM1 / (1.0 + 1e-8)
    assert pom_threshold(a, LABEL == 2) == pytest.approx(0.925)
    np.testing.assert_array_equal(pom(LABEL, CAM1[None], [1]), EXPECTED_MISSING)


def test_classes_are_or_ed():
    out = pom(LABEL, np.stack([CAM0, CAM1]), [0, 1])
    np.testing.assert_array_equal(out, np.maximum(EXPECTED_PRESENT, EXPECTED_MISSING))
    # the class order of the maps does not matter
    np.testing.assert_array_equal(pom(LABEL, np.stack([CAM1, CAM0]), [1, 0]), out)


def test_fallback_threshold_is_one_when_nothing_is_high():
    from wsss_nsrom.potential_object_mining import pom_threshold
    low = np.array([[0.0, 0.1], [0.3, 0.2]])           # nothing > 0.3 (0.3 itself is not)
    assert pom_threshold(low, np.zeros_like(low, bool)) == 1.0
    # after min-max only a constant map has nothing above 0.3: it mines nothing
    flat = np.full((3, 4), 0.4)
    np.testing.assert_array_equal(pom(LABEL, flat[None], [1]), LABEL)
    np.testing.assert_array_equal(pom(LABEL, flat[None], [0]), LABEL)  # present, sum 0


def test_present_class_whose_cam_is_zero_there_takes_the_fallback():
    """The reference tests the *sum* of the values inside, not their count."""
    label = np.array([[1, 0, 0, 0, 0, 0]], np.uint8)
    cam = np.array([[0.0, 0.2, 0.5, 0.6, 0.8, 1.0]])
    # inside = [0.0] (sum 0) -> fallback: H = .5 .6 .8 1 -> median .7; {A > .7} = .8 1 ->
    # t = .9; hit at A = 1.0 only.  With the count rule t would be 0 and all 5 bg pixels hit.
    np.testing.assert_array_equal(pom(label, cam[None], [0], min_fg_ratio=0.0)[0],
                                  [1, 0, 0, 0, 0, 255])


def test_nothing_above_the_median_of_the_high_values_mines_nothing():
    """More than half of H at the maximum: the reference's median of nothing is NaN."""
    from wsss_nsrom.potential_object_mining import pom_threshold
    cam = np.array([[0.0, 0.5, 1.0, 1.0]])
    assert pom_threshold(cam, np.zeros(cam.shape, bool)) == float('inf')
    label = np.array([[1, 0, 0, 0]], np.uint8)
    np.testing.assert_array_equal(pom(label, cam[None], [1]), label)


def test_foreground_and_ignore_pixels_are_never_changed():
    rng = np.random.default_rng(0)
    for _ in range(20):
        label = rng.choice(np.array([0, 1, 2, 3, 255], np.uint8), size=(9, 11))
        ids = sorted(rng.choice(3, size=rng.integers(1, 4), replace=False).tolist())
        cams = rng.random((len(ids), 9, 11))
        out = pom(label, cams, ids)
        keep = label != 0
        np.testing.assert_array_equal(out[keep], label[keep])
        assert set(np.unique(out[~keep]).tolist()) <= {0, 255}


def test_images_with_under_one_percent_foreground_are_ignored_entirely():
    label = np.zeros((10, 10), np.uint8)
    flat = np.zeros((1, 10, 10))                         # mines nothing
    assert (pom(label, flat, [0]) == 255).all()          # 0 % foreground
    label[0, 0] = 2                                      # exactly 1 %: kept
    np.testing.assert_array_equal(pom(label, flat, [1]), label)
    assert (pom(label, flat, [1], min_fg_ratio=0.02) == 255).all()
    big = np.zeros((20, 10), np.uint8)
    big[0, 0] = 1                                        # 0.5 %
    assert (pom(big, np.zeros((1, 20, 10)), [0]) == 255).all()


def test_rule_checks_shapes():
    with pytest.raises(ValueError, match='label size'):
        pom(LABEL, CAM0[None, :2], [0])
    with pytest.raises(ValueError, match='K = 2 class ids'):
        pom(LABEL, CAM0[None], [0, 1])


# ----------------------------------------------------------------------------- the refiner
def test_refiner_reads_the_label_and_the_extra_cams(registered):
    from wsss_core.registry import LABEL_REFINERS, build
    refiner = build(dict(type='PotentialObjectMining'), LABEL_REFINERS)
    sample = dict(img_id='x', label=LABEL.copy(), plain_cams=CAM0[None].astype(np.float32),
                  plain_cams_class_ids=np.array([0]))
    np.testing.assert_array_equal(refiner(sample)['label'], EXPECTED_PRESENT)
    other = build(dict(type='PotentialObjectMining', cams_key='mine', min_fg_ratio=0.5),
                  LABEL_REFINERS)
    out = other(dict(img_id='x', label=LABEL.copy(), mine=CAM0[None], mine_class_ids=[0]))
    assert (out['label'] == 255).all()                   # 3/12 foreground < 50 %
    assert 'cams_key' in repr(other)


def test_refiner_errors_say_what_to_configure(registered):
    from wsss_nsrom.potential_object_mining import PotentialObjectMining
    refiner = PotentialObjectMining()
    with pytest.raises(KeyError, match=r"extra_cams=dict\(plain_cams="):
        refiner(dict(img_id='x', label=LABEL.copy(), cams=CAM0[None], class_ids=[0]))
    with pytest.raises(ValueError, match='after a label-making refiner'):
        refiner(dict(img_id='x', plain_cams=CAM0[None], plain_cams_class_ids=[0]))
    with pytest.raises(ValueError, match='image x: .*label size'):
        refiner(dict(img_id='x', label=LABEL, plain_cams=CAM0[None, :, :2],
                     plain_cams_class_ids=[0]))


# ----------------------------------------------------------------------------- in a chain
def chain_cfg() -> dict:
    return dict(
        seed=0,
        data=dict(type='SyntheticShapes', generator=dict(TINY_GENERATOR), progress=False),
        stages=[
            tiny_classify_stage(val_split=None),
            # the "plain" CAMs (POM) and the CAMs the proxy labels are made from (step A)
            dict(type='MakeCAMs', name='plain', source='classify', scales=(1.0,), flip=False),
            dict(type='MakeCAMs', name='main', source='classify', scales=(1.0, 0.5), flip=True),
            dict(type='RefineLabels', name='labels', cams='main',
                 extra_cams=dict(plain_cams='plain'),
                 refiners=[dict(type='OAAProxyLabels'), dict(type='PotentialObjectMining')]),
        ])


def test_refiner_after_oaa_proxy_labels_in_refine_labels(tmp_path, registered):
    from wsss_core.datasets import build_dataset
    from wsss_core.io import load_cam, read_label_png
    from wsss_core.pipeline import Pipeline
    from wsss_nsrom.potential_object_mining import potential_object_mining
    from wsss_oaa.proxy_labels import oaa_proxy_label

    cfg = chain_cfg()
    res = {r.name: r for r in Pipeline(Config(cfg), tmp_path, progress=False).run()}
    manifest = res['labels'].manifest
    assert set(manifest['inputs']) == {'main', 'plain'}
    assert manifest['counts'] == dict(images=16, computed=16)
    assert manifest['artifacts']['labels'] == 'labels'

    data = build_dataset(cfg['data'], split='train', load_gt=False)
    mined = 0
    for index in range(len(data)):
        sample = data.load_sample(index)
        img_id = sample['img_id']
        main, main_ids = load_cam(tmp_path / 'main' / 'cams' / f'{img_id}.npz')
        plain, plain_ids = load_cam(tmp_path / 'plain' / 'cams' / f'{img_id}.npz')
        step_a = oaa_proxy_label(sample['saliency'], main, main_ids)
        expected = potential_object_mining(step_a, plain, plain_ids)
        got = read_label_png(tmp_path / 'labels' / 'labels' / f'{img_id}.png')
        np.testing.assert_array_equal(got, expected, err_msg=img_id)
        mined += int(((step_a == 0) & (got == 255)).sum())
    assert mined > 0, 'POM changed no pixel: the chain test checks nothing'

    # without extra_cams the chain stops with the hint
    cfg['stages'][3] = dict(cfg['stages'][3], name='labels_no_extra')
    cfg['stages'][3].pop('extra_cams')
    with pytest.raises(KeyError, match='set extra_cams'):
        Pipeline(Config(cfg), tmp_path, progress=False).run()
