"""Score-CAM (Wang et al., "Score-CAM: Score-Weighted Visual Explanations for CNNs", CVPRW 2020).

Gradient-free: each channel A^k of the target activation, upsampled to the input size and
min-max normalised, masks the input; the channel's weight is the change of the class score
it causes with respect to a baseline (the "channel-wise increase of confidence"):

    H^k = s(up(A^k)),   s(M) = (M - min M) / (max M - min M)
    C_c(A^k) = f_c(X o H^k) - f_c(X_b)           M_c = ReLU( sum_k C_c(A^k) A^k )

with ``o`` the element-wise product and f_c the class probability: sigmoid of the logit
for multilabel classifiers (default), softmax for single-label ones.  The baseline X_b is
the zero (normalised, i.e. mean-colour) image; ``baseline=False`` uses f_c(X_b) = 0.
One masked forward gives the weights of every class.

Cost: one forward per (image, channel) on top of the plain forward, i.e. B*K forwards per
call and 8*K per image with the default 4 scales + flip (K = 2048 for a ResNet-50 layer4:
16 k forwards per image).  ``mask_batch`` bounds the memory (masked images per forward);
``top_k`` keeps only the k channels with the largest spatial mean per image (the others
get weight 0), which bounds the cost to B*k forwards.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ..registry import CAM_GENERATORS
from .base import BaseCAMGenerator
from .gradient import capture_target, class_mask, classifier_scores


def minmax(maps: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Min-max normalise each (N, H, W) map to [0, 1]; a constant map becomes 0."""
    flat = maps.flatten(1)
    low = flat.min(1).values.view(-1, 1, 1)
    span = (flat.max(1).values.view(-1, 1, 1) - low)
    return torch.where(span > eps, (maps - low) / span.clamp_min(eps), 0)


@CAM_GENERATORS.register_module()
class ScoreCAM(BaseCAMGenerator):
    """Score-CAM; see the module docstring for the formula and the cost.

    Args:
        target_layer: dotted path of the target sub-module; None = ``model.extract_feat``.
        score: 'sigmoid' (multilabel, default) or 'softmax'.
        mask_batch: masked images per forward.
        top_k: keep the k channels of largest spatial mean per image (None = all).
        baseline: subtract the score of the zero image.
    """

    def __init__(self, target_layer: Optional[str] = None, score: str = 'sigmoid',
                 mask_batch: int = 32, top_k: Optional[int] = None, baseline: bool = True):
        if score not in ('sigmoid', 'softmax'):
            raise ValueError(f"score must be 'sigmoid' or 'softmax', got {score!r}")
        self.target_layer, self.score, self.baseline = target_layer, score, baseline
        self.mask_batch, self.top_k = int(mask_batch), top_k

    def __call__(self, model, img: torch.Tensor, class_ids=None) -> torch.Tensor:
        with torch.no_grad():
            return self.class_maps(model, img, class_ids)

    def probs(self, model, img: torch.Tensor) -> torch.Tensor:
        logits = classifier_scores(model, img).float()
        return torch.sigmoid(logits) if self.score == 'sigmoid' else logits.softmax(1)

    def channels(self, act: torch.Tensor) -> torch.Tensor:
        """(B, K') indices of the channels kept per image."""
        b, k = act.shape[:2]
        if self.top_k is None or self.top_k >= k:
            return torch.arange(k, device=act.device).expand(b, k)
        return act.mean(dim=(2, 3)).topk(self.top_k, dim=1).indices

    def channel_scores(self, model, img: torch.Tensor, act: torch.Tensor,
                       chans: torch.Tensor) -> torch.Tensor:
        """f(X_b o H^k) for the kept channels, (B, K', C), in chunks of ``mask_batch``."""
        b, kk = chans.shape
        rows = torch.arange(b, device=act.device).repeat_interleave(kk)
        cols = chans.flatten()
        out = []
        for i in range(0, rows.numel(), self.mask_batch):
            r, c = rows[i:i + self.mask_batch], cols[i:i + self.mask_batch]
            masks = F.interpolate(act[r, c][:, None], size=img.shape[-2:], mode='bilinear',
                                  align_corners=False)[:, 0]
            out.append(self.probs(model, img[r] * minmax(masks)[:, None].to(img.dtype)))
        return torch.cat(out).view(b, kk, -1)

    def class_maps(self, model, img: torch.Tensor, class_ids=None) -> torch.Tensor:
        with capture_target(model, self.target_layer, grad=False) as cap:
            probs = self.probs(model, img)
        act = cap.activation.float()
        chans = self.channels(act)
        weights = self.channel_scores(model, img, act, chans)
        if self.baseline:
            weights = weights - self.probs(model, torch.zeros_like(img[:1]))[:, None]
        kept = torch.gather(act, 1, chans[:, :, None, None].expand(-1, -1, *act.shape[2:]))
        maps = F.relu(torch.einsum('bkc,bkhw->bchw', weights, kept))
        wanted = class_mask(class_ids, *probs.shape, device=maps.device)
        return maps * wanted[:, :, None, None]
