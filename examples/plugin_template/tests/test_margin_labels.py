"""MarginLabels against labels worked out by hand."""
import numpy as np
import pytest

from wsss_template.margin_labels import MarginLabels


def sample(cams, class_ids):
    cams = np.asarray(cams, np.float32)
    return dict(img_id='x', cams=cams, class_ids=np.asarray(class_ids),
                img=np.zeros((*cams.shape[1:], 3), np.uint8))


def test_labels_by_hand():
    # one row of 5 pixels, classes 2 and 6 (0-based) -> labels 3 and 7; background 0.25
    cams = [[[0.9, 0.50, 0.30, 0.1, 0.26]],
            [[0.1, 0.45, 0.80, 0.2, 0.00]]]
    label = MarginLabels(threshold=0.25, margin=0.1)(sample(cams, [2, 6]))['label']
    # pixel 0: 0.9 vs 0.25 -> class 2; pixel 1: 0.50 vs 0.45 -> ambiguous; pixel 2: 0.8 vs
    # 0.3 -> class 6; pixel 3: 0.25 (bg) vs 0.2 -> ambiguous; pixel 4: 0.26 vs 0.25 -> ambiguous
    assert label.tolist() == [[3, 255, 7, 255, 255]]
    assert label.dtype == np.uint8


def test_zero_margin_is_the_plain_background_threshold():
    rng = np.random.default_rng(0)
    cams = rng.random((3, 6, 7))
    label = MarginLabels(threshold=0.3, margin=0.0)(sample(cams, [0, 4, 5]))['label']
    scores = np.concatenate([np.full((1, 6, 7), 0.3), cams])
    expected = np.array([0, 1, 5, 6])[scores.argmax(0)]
    np.testing.assert_array_equal(label, expected)


@pytest.mark.parametrize('kwargs, message', [(dict(threshold=1.5), 'threshold'),
                                             (dict(margin=-0.1), 'margin')])
def test_bad_options_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MarginLabels(**kwargs)
