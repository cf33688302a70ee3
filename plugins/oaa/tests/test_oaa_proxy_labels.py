"""OAA's proxy-label rule (the reference's gen_gt) on crafted maps, pixel by pixel, and its refiner."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from wsss_oaa.testing import registered  # noqa: F401 (fixture)

# One row of 11 pixels, image classes 3 and 1 (given in that order: labels 4 and 2).
# Each map spans exactly [0, 1] before the re-normalisation; class 3's map is stored
# affinely squeezed (0.2 + 0.5 A) to check that the rule re-normalises it back.
#              p0    p1    p2    p3   p4    p5    p6    p7    p8    p9    p10
SAL = [255, 200, 0, 0, 100, 10, 200, 128, 0, 250, 40]
A3 = [1.0, 0.95, 0.95, 0.0, 0.1, 0.0, 0.28, 0.0, 0.5, 0.5, 0.0]
A1 = [0.0, 1.0, 0.0, 0.0, 0.2, 0.85, 0.0, 0.6, 0.0, 0.0, 0.0]
# Hand derivation, with background score b = 1 - S/255 and guard g = max(S, 255 [A > 0.8]):
# p0  b=0,    A3=1 hot alone                          -> class 3        -> 4
# p1  A3=.95, A1=1: two channels > 0.9 (conflict)                        -> 255
# p2  b=1 and A3=.95 both > 0.9 (conflict with the background)            -> 255
# p3  b=1, no attention, g=0                          -> background     -> 0
# p4  b=.61 wins over .1/.2 (dropped), g=S=100 >= 32  -> salient bg     -> 255
# p5  b=.96 > A1=.85 (not > .9: no conflict), g=255   -> attended bg    -> 255
# p6  b=.22 and A3=.28 are both < .3 -> all zero -> bg; g=200 (weak evidence dropped) -> 255
# p7  b=.50 < A1=.6                                   -> class 1        -> 2
# p8  b=1 > A3=.5, g=0                                -> background     -> 0
# p9  b=.02 dropped, A3=.5                            -> class 3        -> 4
# p10 b=.84, nothing else, g=40 >= 32                 -> salient bg     -> 255
EXPECTED = [4, 255, 255, 0, 255, 255, 255, 2, 0, 4, 255]


def crafted():
    sal = np.array([SAL], np.uint8)
    cams = np.stack([0.2 + 0.5 * np.array([A3]), np.array([A1])]).astype(np.float32)
    return sal, cams, [3, 1]


def test_rule_pixel_by_pixel():
    from wsss_oaa.proxy_labels import oaa_proxy_label
    label = oaa_proxy_label(*crafted())
    assert label.dtype == np.uint8 and label.shape == (1, 11)
    assert label[0].tolist() == EXPECTED


def test_class_order_does_not_matter():
    from wsss_oaa.proxy_labels import oaa_proxy_label
    sal, cams, _ = crafted()
    assert oaa_proxy_label(sal, cams[::-1], [1, 3])[0].tolist() == EXPECTED


def test_constants_are_configurable():
    from wsss_oaa.proxy_labels import oaa_proxy_label
    sal, cams, ids = crafted()
    # bg_thr 101: p4 (S=100) and p10 (S=40) become background; p5 (attended) and p6 stay 255
    got = oaa_proxy_label(sal, cams, ids, bg_thr=101)[0].tolist()
    assert got == [4, 255, 255, 0, 0, 255, 255, 2, 0, 4, 0]
    # att_thr 0.9: p5's A1=.85 no longer guards -> background
    assert oaa_proxy_label(sal, cams, ids, att_thr=0.9)[0, 5] == 0
    # fg_thr 0.25: p6's A3=.28 now survives and beats the dropped b=.22 -> class 3
    assert oaa_proxy_label(sal, cams, ids, fg_thr=0.25)[0, 6] == 4
    # conflict 0.99: p1 -> A1=1 wins (A3=.95); p2 -> b=1 wins, g=255 (A3 > .8) -> 255
    got = oaa_proxy_label(sal, cams, ids, conflict=0.99)[0].tolist()
    assert got[1] == 2 and got[2] == 255


def near_empty(n_fg: int):
    """10x20 = 200 pixels, background (S=0) except ``n_fg`` salient, attended pixels."""
    sal = np.zeros((10, 20), np.uint8)
    cam = np.zeros((1, 10, 20), np.float32)
    for i in range(n_fg):
        sal[5, i] = 255
        cam[0, 5, i] = 1.0
    return sal, cam, [0]


def test_near_empty_image_is_ignored_entirely():
    from wsss_oaa.proxy_labels import oaa_proxy_label
    label = oaa_proxy_label(*near_empty(1))                 # 1/200 = 0.5 % < 1 %
    assert (label == 255).all()
    label = oaa_proxy_label(*near_empty(2))                 # 2/200 = 1 %: kept
    expected = np.zeros((10, 20), np.uint8)
    expected[5, :2] = 1
    np.testing.assert_array_equal(label, expected)
    assert (oaa_proxy_label(*near_empty(1), min_fg_ratio=0.0) != 255).all()
    # no class at all: no foreground -> all ignored
    assert (oaa_proxy_label(np.zeros((4, 4), np.uint8), np.zeros((0, 4, 4)), []) == 255).all()


def test_ties_go_to_the_lower_class_id():
    from wsss_oaa.proxy_labels import oaa_proxy_label
    sal = np.full((1, 3), 255, np.uint8)
    cam = np.array([[0.0, 0.5, 1.0]], np.float32)
    label = oaa_proxy_label(sal, np.stack([cam, cam]), [4, 2])
    # p0: everything 0 -> bg -> S=255 guards -> 255; p1, p2: tie between classes 2 and 4 -> 3
    assert label[0].tolist() == [255, 3, 255]   # p2: both 1.0 > 0.9 -> conflict


def test_saliency_plus_attention_255_ties_are_resolved_in_float32_as_the_reference():
    """S + 255 A = 255 makes the background and class scores equal in exact arithmetic.
    The reference stores them in float32: 1 - 65/255 becomes the float32 nearest below
    190/255, so the class wins; at S = 64 the two round to the same float32 and the argmax
    picks the background (then 255: S = 64 >= 32).  A float64 stack gives 1 - S/255 >
    (255 - S) / (255 + 1e-8) and the background at both pixels."""
    from wsss_oaa.proxy_labels import oaa_proxy_label
    f32 = np.float32
    bg65, att65 = f32(1) - f32(65) / f32(255), f32(190 / (255 + 1e-8))
    bg64, att64 = f32(1) - f32(64) / f32(255), f32(191 / (255 + 1e-8))
    assert att65 > bg65 and att64 == bg64                              # the crafted edges
    assert 1 - 65 / 255 > 190 / (255 + 1e-8)                           # float64: background
    # pixels: S=65/A=190 (the edge), S=64/A=191 (a float32 tie), then the map's min
    # (S=0: background) and max (S=255, A=1: the class alone)
    sal = np.array([[65, 64, 0, 255]], np.uint8)
    att = np.array([[[190, 191, 0, 255]]], np.uint8)
    label = oaa_proxy_label(sal, att, [6])
    assert label.tolist() == [[7, 255, 0, 7]]


def test_rule_checks_shapes():
    from wsss_oaa.proxy_labels import oaa_proxy_label
    with pytest.raises(ValueError, match='saliency size'):
        oaa_proxy_label(np.zeros((2, 3), np.uint8), np.zeros((1, 3, 2)), [0])
    with pytest.raises(ValueError, match='repeat'):
        oaa_proxy_label(np.zeros((2, 3), np.uint8), np.zeros((2, 2, 3)), [1, 1])


# ----------------------------------------------------------------------------- refiner
def test_refiner_with_the_dataset_saliency(registered):
    from wsss_core.registry import LABEL_REFINERS, build
    refiner = build(dict(type='OAAProxyLabels'), LABEL_REFINERS)
    assert refiner.needs == ('saliency',)
    sal, cams, ids = crafted()
    out = refiner(dict(img_id='x', cams=cams, class_ids=np.array(ids), saliency=sal))
    assert out['label'][0].tolist() == EXPECTED
    with pytest.raises(KeyError, match='saliency'):
        refiner(dict(img_id='x', cams=cams, class_ids=np.array(ids)))
    with pytest.raises(ValueError, match='saliency of x'):
        refiner(dict(img_id='x', cams=cams, class_ids=np.array(ids), saliency=sal[:, :5]))


def test_refiner_through_a_saliency_source(tmp_path, registered):
    from wsss_core.registry import LABEL_REFINERS, build
    sal, cams, ids = crafted()
    Image.fromarray(sal).save(tmp_path / 'x.png')
    refiner = build(dict(type='OAAProxyLabels', bg_thr=101,
                         source=dict(type='SaliencyFromDisk', root=str(tmp_path))),
                    LABEL_REFINERS)
    assert refiner.needs == ('img',) and refiner.params['bg_thr'] == 101
    sample = dict(img_id='x', cams=cams, class_ids=np.array(ids),
                  img=np.zeros((1, 11, 3), np.uint8), saliency=np.zeros((1, 11), np.uint8))
    label = refiner(sample)['label']          # the source's map, not the sample's zeros
    assert label[0].tolist() == [4, 255, 255, 0, 0, 255, 255, 2, 0, 4, 0]
    assert 'OAAProxyLabels(' in repr(refiner) and 'SaliencyFromDisk' in repr(refiner)
