"""Gradient-based CAMs: Grad-CAM, Grad-CAM++ and Layer-CAM.

All three read a target activation ``A`` (B, K, h, w) and the gradient of a class score
``y_c`` (the logit, before the sigmoid) with respect to it, ``g = dy_c / dA``, and differ
only in how they combine the two (:meth:`GradientCAM.combine`).

The target is by default the classifier's input features, the output of
``model.extract_feat``; ``target_layer='backbone.stages.2'`` names any sub-module by its
dotted path instead.  The forward runs without autograd up to the target, whose output
becomes a fresh leaf; only the layers after it build a graph, and ``torch.autograd.grad``
differentiates with respect to that leaf, so no gradient reaches (or accumulates on) the
model's parameters.

Batched: one forward for the whole batch, then one backward per class over all images at
once (in eval mode the images are independent, so ``d(sum_b y_bc) / dA_b = dy_bc / dA_b``).
``class_ids`` (a list of class-index lists, one per image) restricts the backward passes to
the classes that some image needs; the other maps are zeros.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from ..registry import CAM_GENERATORS
from .base import BaseCAMGenerator


def classifier_scores(model, img: torch.Tensor) -> torch.Tensor:
    """Class scores (B, C): ``model.logits(img)`` when the model has it, else ``model(img)``."""
    fn = getattr(model, 'logits', None)
    return fn(img) if callable(fn) else model(img)


def class_mask(class_ids: Optional[Sequence[Sequence[int]]], batch: int, num_classes: int,
               device=None) -> torch.Tensor:
    """(B, C) bool: which (image, class) maps are wanted; all of them when ``class_ids`` is None."""
    if class_ids is None:
        return torch.ones(batch, num_classes, dtype=torch.bool, device=device)
    if len(class_ids) != batch:
        raise ValueError(f'class_ids has {len(class_ids)} entries for a batch of {batch} images')
    mask = torch.zeros(batch, num_classes, dtype=torch.bool, device=device)
    for b, ids in enumerate(class_ids):
        mask[b, torch.as_tensor(list(ids), dtype=torch.long, device=device)] = True
    return mask


class _Capture:
    """Receives the target's output once per forward and hands on what the network sees next.

    With ``grad``, the output is detached into a leaf that requires grad, autograd is switched
    on for the rest of the forward, and the network continues on a clone (so an in-place op
    after the target cannot change the recorded activation).
    """

    def __init__(self, grad: bool):
        self.grad = grad
        self.outputs = []

    def __call__(self, out):
        if not torch.is_tensor(out):
            raise TypeError(f'the CAM target layer must output a tensor, got {type(out).__name__}')
        if not self.grad:
            self.outputs.append(out.detach())
            return out
        leaf = out.detach().requires_grad_(True)
        self.outputs.append(leaf)
        torch.set_grad_enabled(True)   # undone by the caller's no_grad block on exit
        return leaf.clone()

    @property
    def activation(self) -> torch.Tensor:
        if len(self.outputs) != 1:
            raise RuntimeError(f'the CAM target layer ran {len(self.outputs)} times in one '
                               'forward; pick a layer that runs exactly once')
        return self.outputs[0]


@contextmanager
def patched_extract_feat(model, fn):
    """Temporarily make ``model.extract_feat(x)`` return ``fn(original(x))``."""
    own = 'extract_feat' in vars(model)
    original = model.extract_feat
    model.extract_feat = lambda *args, **kwargs: fn(original(*args, **kwargs))
    try:
        yield
    finally:
        if own:
            model.extract_feat = original
        else:
            del model.extract_feat


@contextmanager
def capture_target(model, target_layer: Optional[str] = None, grad: bool = True):
    """Record the target activation of the forwards run inside; yields a :class:`_Capture`."""
    cap = _Capture(grad)
    if target_layer is None:
        if not callable(getattr(model, 'extract_feat', None)):
            raise AttributeError(f'{type(model).__name__} has no extract_feat(); pass '
                                 "target_layer='dotted.module.path'")
        with patched_extract_feat(model, cap):
            yield cap
        return
    handle = model.get_submodule(target_layer).register_forward_hook(lambda m, i, o: cap(o))
    try:
        yield cap
    finally:
        handle.remove()


@contextmanager
def autograd_on(img: torch.Tensor):
    """Leave inference mode, enable autograd; yields ``img`` (a normal tensor, cloned if needed)."""
    with torch.inference_mode(False), torch.enable_grad():
        yield img.clone() if img.is_inference() else img


class GradientCAM(BaseCAMGenerator):
    """Base of the gradient family: subclasses implement :meth:`combine`.

    Args:
        target_layer: dotted path of the target sub-module; None = ``model.extract_feat``.
    """

    needs_grad = True

    def __init__(self, target_layer: Optional[str] = None):
        self.target_layer = target_layer

    def __call__(self, model, img: torch.Tensor, class_ids=None) -> torch.Tensor:
        with autograd_on(img) as x:
            return self.class_maps(model, x, class_ids)

    def combine(self, act: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """(B, K, h, w) activation and gradient of one class -> (B, h, w) map."""
        raise NotImplementedError

    def forward(self, model, img: torch.Tensor):
        """Target activation (a leaf that requires grad) and the class scores built on it."""
        with capture_target(model, self.target_layer, grad=True) as cap, torch.no_grad():
            scores = classifier_scores(model, img)
        return cap.activation, scores

    def class_maps(self, model, img: torch.Tensor, class_ids=None) -> torch.Tensor:
        act, scores = self.forward(model, img)
        wanted = class_mask(class_ids, scores.shape[0], scores.shape[1], scores.device)
        maps = act.new_zeros((scores.shape[0], scores.shape[1]) + act.shape[2:], dtype=torch.float)
        a = act.detach().float()
        for c in wanted.any(0).nonzero().flatten().tolist():
            sel = wanted[:, c].to(scores.dtype)
            grad, = torch.autograd.grad(scores[:, c], act, grad_outputs=sel, retain_graph=True)
            maps[:, c] = self.combine(a, grad.float())
        return maps * wanted[:, :, None, None]


@CAM_GENERATORS.register_module()
class GradCAM(GradientCAM):
    """Grad-CAM (Selvaraju et al., ICCV 2017, eq. 1-2):

        alpha_c^k = 1/Z sum_{x,y} dy_c / dA^k(x, y)        M_c = ReLU( sum_k alpha_c^k A^k )

    On the CAM classifier (y_c = sum_k w_ck GAP(A^k)) this is CAM / (h w).
    """

    def combine(self, act, grad):
        alpha = grad.mean(dim=(2, 3), keepdim=True)
        return F.relu((alpha * act).sum(1))


@CAM_GENERATORS.register_module()
class GradCAMPlusPlus(GradientCAM):
    """Grad-CAM++ (Chattopadhay et al., WACV 2018, eq. 19 with Y_c = exp(y_c)).

    With g = dy_c / dA^k and a piecewise-linear network, the higher derivatives of exp(y_c)
    are exp(y_c) g^2 and exp(y_c) g^3, so

        a^{kc}_{ij} = g_ij^2 / ( 2 g_ij^2 + sum_{a,b} A^k_{ab} g_ij^3 )     (0 where that is 0/0)
        w^c_k = sum_{ij} a^{kc}_{ij} ReLU(g_ij)           M_c = ReLU( sum_k w^c_k A^k )

    The common positive factor exp(y_c) of the weights is dropped: it only scales M_c, and
    the per-class max normalisation removes it (keeping it overflows for large scores).
    """

    def combine(self, act, grad):
        g2 = grad.pow(2)
        denom = 2 * g2 + act.sum(dim=(2, 3), keepdim=True) * g2 * grad
        alpha = torch.where(denom != 0, g2 / torch.where(denom != 0, denom, 1), 0)
        weight = (alpha * F.relu(grad)).sum(dim=(2, 3), keepdim=True)
        return F.relu((weight * act).sum(1))


@CAM_GENERATORS.register_module()
class LayerCAM(GradientCAM):
    """Layer-CAM (Jiang et al., TIP 2021): element-wise positive gradients,

        M_c = ReLU( sum_k ReLU(dy_c / dA^k) * A^k )

    On the CAM classifier this is ReLU( sum_k ReLU(w_ck) A^k ) / (h w).
    """

    def combine(self, act, grad):
        return F.relu((F.relu(grad) * act).sum(1))
