"""The linear probe (wsss_core.evaluation.linear_probe): it finds labels that the features
hold linearly and nothing where they hold none."""
from __future__ import annotations

import numpy as np
import torch

from wsss_core.evaluation.linear_probe import linear_probe_map, probe_features


def _labels(rng, n, c):
    y = (rng.random((n, c)) < 0.4).astype(np.float32)
    y[y.sum(1) == 0, 0] = 1
    return y


def test_probe_reads_linear_labels_and_not_noise():
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    y_train, y_val = _labels(rng, 300, 4), _labels(rng, 200, 4)
    mix = rng.normal(size=(4, 16))          # labels written linearly into 16 dims, plus noise
    x_train = y_train @ mix + 0.3 * rng.normal(size=(300, 16))
    x_val = y_val @ mix + 0.3 * rng.normal(size=(200, 16))
    assert linear_probe_map((x_train, y_train), (x_val, y_val))['mAP'] > 0.97
    noise = linear_probe_map((rng.normal(size=(300, 16)), y_train),
                             (rng.normal(size=(200, 16)), y_val))
    assert noise['mAP'] < 0.6               # chance is about the positive rate, 0.4-0.5
    assert noise['train_mAP'] > noise['mAP']   # it fits the noise it was trained on


class _Images:
    """Four images, two of them bright: a backbone of one mean-pooling layer sees that."""

    def __init__(self):
        self.items = []
        for i in range(4):
            img = np.full((8, 8, 3), 200 if i % 2 else 20, np.uint8)
            self.items.append(dict(img=img, labels=np.array([i % 2, 1 - i % 2], np.float32)))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_probe_features_pool_the_frozen_backbone():
    backbone = torch.nn.Conv2d(3, 2, 1)
    with torch.no_grad():
        backbone.weight.fill_(1.0)
        backbone.bias.zero_()
    feats, labels = probe_features(backbone, _Images(), batch_size=3)
    assert feats.shape == (4, 2) and labels.shape == (4, 2)
    assert (feats[1::2, 0] > feats[0::2, 0].max()).all()     # bright images, higher feature
    assert np.array_equal(labels[:, 0], [0, 1, 0, 1])
