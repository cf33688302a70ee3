"""GETAM's online pseudo labels (``docs/methods/getam.md#25-online-pseudo-labels``, steps 3-7):
crafted cases with known answers, the OpenCV opening convention, and agreement with a
per-image NumPy/OpenCV transcription of the reference's steps on random batches."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from wsss_getam.testing import registered  # noqa: F401 (fixture; also sets up the process)
from wsss_getam.online_labels import binary_opening, online_pseudo_labels


def batch(maps, present, sal):
    """Tensors of one image: maps (C, H, W), present class indices, saliency (H, W)."""
    maps = torch.as_tensor(np.asarray(maps, np.float32))[None]
    labels = torch.zeros(1, maps.shape[1])
    labels[0, list(present)] = 1
    return maps, labels, torch.as_tensor(np.asarray(sal, np.float32))[None]


def test_background_comes_only_from_saliency():
    h, w = 8, 8
    maps = np.zeros((3, h, w))
    maps[1, :, :4] = 1.0          # class 1 on the left half
    maps[1, 0, 0] = 0.01          # a weak pixel: (1 - 0.01)^32 = 0.72 beats 0.01
    maps[1, 1, 1] = 0.5           # 0.5^32 ~ 2e-10 < 0.5: the class wins
    maps[2, 2, 2] = 1.0           # ties with class 1 there: the lower index (1) wins
    sal = np.zeros((h, w))
    sal[:4] = 128                 # top half salient (any value > 0)
    out = online_pseudo_labels(*batch(maps, [1, 2], sal), opening=0)
    want = np.zeros((h, w), np.int64)
    want[:4, :4] = 2              # salient, class 1 -> label 2
    want[:4, 4:] = 255            # salient, no activation: background wins -> ignore
    want[0, 0] = 255
    np.testing.assert_array_equal(out.label[0].numpy(), want)
    assert not out.completed.any()  # q-quantile of class 1 is 1.0: nothing above it
    np.testing.assert_array_equal(out.salient[0].numpy(), sal > 0)


def test_absent_classes_are_ignored_and_maps_are_max_normalised():
    maps = np.zeros((2, 4, 4))
    maps[0] = 3.0                 # class 0 is not in the image label
    maps[1, :2] = 2.0
    out = online_pseudo_labels(*batch(maps, [1], np.full((4, 4), 255)), opening=0)
    assert (out.maps[0, 0] == 0).all()
    torch.testing.assert_close(out.maps[0, 1, 0, 0], torch.tensor(2.0 / (2.0 + 1e-5)))
    want = np.full((4, 4), 255)
    want[:2] = 2
    np.testing.assert_array_equal(out.label[0].numpy(), want)


def test_percentile_completion_claims_the_top_pixels_lowest_class_first():
    h, w = 6, 10
    maps = np.zeros((3, h, w))
    maps[0].flat[:30] = np.arange(1, 31)   # 30 positive values: t = sorted[27] = 28
    maps[2].flat[:30] = np.arange(1, 31)   # the same for class 2: ties with class 0
    maps[2, 5, 9] = 100.0                   # class 2 alone above its own t elsewhere
    maps[1, 4, 4] = 5.0                     # one positive pixel: floor(0.9) = 0, skipped
    sal = np.zeros((h, w))
    sal[0, 0] = 255                         # salient, weak (1/30): background wins -> 255
    out = online_pseudo_labels(*batch(maps, [0, 1, 2], sal), opening=0)
    label = out.label[0].numpy()
    # class 2's t: its 31 values sorted -> position floor(27.9) = 27 -> 28
    want = np.zeros((h, w), np.int64)
    want.flat[28] = 1                       # value 29: classes 0 and 2 qualify -> class 0
    want.flat[29] = 1                       # value 30: likewise
    want[5, 9] = 3                          # only class 2 -> label 3
    want[0, 0] = 255
    np.testing.assert_array_equal(label, want)
    completed = np.zeros((h, w), bool)
    completed.flat[[28, 29]] = True
    completed[5, 9] = True
    np.testing.assert_array_equal(out.completed[0].numpy(), completed)


def test_opening_removes_a_small_blob_and_keeps_ignore():
    h, w = 32, 32
    maps = np.zeros((2, h, w))
    maps[0, 2:16, 2:16] = 1.0               # a 14 x 14 object
    maps[1, 24:27, 24:27] = 1.0             # a 3 x 3 blob
    sal = np.zeros((h, w))
    sal[2:16, 2:16] = sal[24:27, 24:27] = 255
    sal[18:31, 2:15] = 255                  # a salient region without activation -> 255
    out = online_pseudo_labels(*batch(maps, [0, 1], sal), opening=10)
    label = out.label[0].numpy()
    assert (label[24:27, 24:27] == 0).all()             # blob removed
    assert (label[3:16, 3:16] == 1).all()               # object kept (OpenCV: 1 px shift)
    assert (label[2, 2:16] == 0).all() and (label[2:16, 2] == 0).all()
    assert (label[19:31, 3:15] == 255).all()            # ignore stays ignore
    assert set(np.unique(label)) == {0, 1, 255}


@pytest.mark.parametrize('size', [1, 3, 4, 10])
def test_binary_opening_matches_opencv(size):
    rng = np.random.default_rng(size)
    masks = rng.random((3, 21, 26)) < 0.7
    masks[0, :8, :9] = True                 # touches the border
    got = binary_opening(torch.from_numpy(masks), size).numpy()
    kernel = np.ones((size, size), np.uint8)
    for m, g in zip(masks, got):
        want = cv2.morphologyEx(m.astype(np.uint8) * 255, cv2.MORPH_OPEN, kernel) == 255
        np.testing.assert_array_equal(g, want)


# ----------------------------------------------------------------------------- transcription
def reference_labels(maps, labels, sal, q=0.9, k=10):
    """``docs/methods/getam.md`` §2.5 steps 3-7 for one image at a time, NumPy + OpenCV, literal."""
    out_label, out_done = [], []
    for m, y, s in zip(maps, labels, sal):
        norm = m / (m.max(axis=(1, 2), keepdims=True) + 1e-5)
        present = y > 0
        cam = np.where(present[:, None, None], norm, 0).astype(np.float32)
        bg = np.power(1 - cam.max(0), 32)
        label = np.argmax(np.concatenate([bg[None], cam]), 0)
        label[label == 0] = 255
        s = s.copy()
        s[s > 0] = 1
        label[s == 0] = 0
        done = np.zeros(label.shape, bool)
        for c in np.nonzero(present)[0]:
            values = np.sort(norm[c][norm[c] > 0])
            pos = int(values.shape[0] * q)
            if pos > 0:
                hit = (norm[c] > values[pos]) & (label == 0)
                label[hit] = c + 1
                done |= hit
        fg = ((label != 0) * 255).astype(np.uint8)
        opened = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((k, k), np.uint8))
        label[opened != 255] = 0
        out_label.append(label)
        out_done.append(done)
    return np.stack(out_label), np.stack(out_done)


def smooth_noise(rng, shape, size):
    low = rng.standard_normal(shape[:-2] + (size[0] // 8, size[1] // 8)).astype(np.float32)
    up = torch.nn.functional.interpolate(torch.from_numpy(low)[None] if low.ndim == 3
                                         else torch.from_numpy(low)[None, None], size=size,
                                         mode='bilinear', align_corners=False)
    return up[0].numpy() if low.ndim == 3 else up[0, 0].numpy()


@pytest.mark.parametrize('seed', [0, 1])
def test_batched_labels_equal_a_per_image_transcription(seed):
    rng = np.random.default_rng(seed)
    b, c, h, w = 3, 5, 40, 48
    maps = np.stack([np.maximum(smooth_noise(rng, (c, h, w), (h, w)), 0) for _ in range(b)])
    maps *= rng.random(maps.shape).astype(np.float32) ** 0.2  # texture, many distinct values
    labels = (rng.random((b, c)) < 0.5).astype(np.float32)
    labels[:, 0] = 1
    labels[2] = 0                                               # an image without classes
    sal = np.stack([(smooth_noise(rng, (h, w), (h, w)) > 0.3) * rng.integers(1, 256, (h, w))
                    for _ in range(b)]).astype(np.float32)
    want_label, want_done = reference_labels(maps, labels, sal)
    out = online_pseudo_labels(torch.from_numpy(maps), torch.from_numpy(labels),
                               torch.from_numpy(sal))
    np.testing.assert_array_equal(out.label.numpy(), want_label)
    np.testing.assert_array_equal(out.completed.numpy(), want_done)
    assert out.completed.any() and (out.label == 255).any() and (out.label == 0).any()


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match='disagree'):
        online_pseudo_labels(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2), torch.zeros(1, 4, 4))
