"""Linear probe: how much of a data set's image labels frozen backbone features already hold.

Used to measure what pretraining on the ShapeCorpus carries over to SyntheticShapes (the
"leak" of the stand-in for ImageNet): the probe of pretrained features against the probe of
the same network with random weights.

1. Features: the frozen backbone's pooled output per image,
   ``f_i = pool(backbone(normalise(x_i)))`` (:func:`~wsss_core.models.pretrain_classifier.pooled_features`),
   standardised with the training images' mean and standard deviation,
   ``z_i = (f_i - mu) / (sigma + 1e-6)``.
2. Probe: one logistic regression per class on ``z`` (multi-label), weights ``W``, bias ``b``,
   minimising the mean binary cross-entropy plus ``l2 / 2 * ||W||^2`` by full-batch L-BFGS:
   ``L = mean_{i,c} BCE(W_c . z_i + b_c, y_ic) + l2 / 2 * ||W||_F^2``.
3. Score: the mAP of ``sigmoid(W z + b)`` on the validation images
   (:func:`~wsss_core.evaluation.classification.mean_average_precision`).
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .classification import mean_average_precision

__all__ = ['probe_features', 'fit_linear_probe', 'linear_probe_map']


@torch.no_grad()
def probe_features(backbone: torch.nn.Module, dataset, batch_size: int = 64,
                   num_prefix_tokens: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """``(features (N, D) float32, labels (N, C) float32)`` of every image of ``dataset``
    (samples with ``img`` HxWx3 uint8 and ``labels``), through the frozen ``backbone`` in
    eval mode, images normalised with the ImageNet mean / std (NormalizeImages' defaults)."""
    from ..models.data_preprocessor import NormalizeImages
    from ..models.pretrain_classifier import pooled_features
    backbone = backbone.eval()
    norm = NormalizeImages()
    feats, labels = [], []
    for start in range(0, len(dataset), batch_size):
        samples = [dataset[i] for i in range(start, min(len(dataset), start + batch_size))]
        img = torch.stack([torch.from_numpy(np.ascontiguousarray(s['img'].transpose(2, 0, 1)))
                           for s in samples])
        batch = norm(dict(img=img), training=False)['img']
        feats.append(pooled_features(backbone(batch), num_prefix_tokens).float().numpy())
        labels.append(np.stack([np.asarray(s['labels'], np.float32) for s in samples]))
    return np.concatenate(feats), np.concatenate(labels)


def fit_linear_probe(x: np.ndarray, y: np.ndarray, l2: float = 1e-3,
                     max_iter: int = 200) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(W (C, D), b (C,))`` minimising the module docstring's loss on standardised ``x``."""
    z = torch.from_numpy(np.asarray(x, np.float64))
    t = torch.from_numpy(np.asarray(y, np.float64))
    w = torch.zeros(t.shape[1], z.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(t.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=max_iter, line_search_fn='strong_wolfe',
                            tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(z @ w.T + b, t) + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def linear_probe_map(train: Tuple[np.ndarray, np.ndarray], val: Tuple[np.ndarray, np.ndarray],
                     l2: float = 1e-3) -> Dict[str, float]:
    """Fit the probe on ``train = (features, labels)``, score it on ``val``: ``mAP`` and
    the training mAP (``train_mAP``: how separable the training images are)."""
    mu, sigma = train[0].mean(0), train[0].std(0) + 1e-6
    zt, zv = (train[0] - mu) / sigma, (val[0] - mu) / sigma
    w, b = fit_linear_probe(zt, train[1], l2)

    def scores(z):
        return torch.sigmoid(torch.from_numpy(np.asarray(z, np.float64)) @ w.T + b).numpy()

    return dict(mAP=mean_average_precision(scores(zv), val[1])[0],
                train_mAP=mean_average_precision(scores(zt), train[1])[0])
