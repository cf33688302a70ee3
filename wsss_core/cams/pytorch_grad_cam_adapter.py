"""Thin adapter over the optional ``grad-cam`` package (``pytorch_grad_cam``, J. Gildenblat).

Gives access to the package's whole method zoo (GradCAM, GradCAMPlusPlus, XGradCAM,
HiResCAM, LayerCAM, EigenCAM, ScoreCAM, AblationCAM, ...) as a CAM generator, by name:

    dict(type='GradCAMPackage', method='XGradCAM')

The framework's classifier is presented to the package as a module whose forward returns
the logits (``model.logits``), with the target layer either a named sub-module
(``target_layer='backbone.stages.3'``) or, by default, an identity layer that sees the
output of ``model.extract_feat`` (the classifier's input features).  The class score of
class c is the logit (``ClassifierOutputTarget(c)``); one package call per class, over the
images of the batch that need it.

Differences from the native generators (:mod:`.gradient`, :mod:`.score_cam`):

* the maps come back at the INPUT resolution (the package upsamples them with OpenCV),
  each (image, class) min-max normalised to [0, 1] by the package;
* the package's backward accumulates parameter gradients: they are saved before and
  restored after, and the model's train/eval flag is restored too;
* it is slower (NumPy on the CPU, one forward + backward per class).

Install: the package declares ``opencv-python-headless``, which would sit beside the
project's ``opencv-contrib-python-headless`` (both provide ``cv2``), so install it without
its dependencies: ``pip install 'wsss-core[gradcam]' && pip install --no-deps grad-cam``.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Optional

import torch
import torch.nn as nn

from ..registry import CAM_GENERATORS
from .base import BaseCAMGenerator
from .gradient import autograd_on, class_mask, classifier_scores, patched_extract_feat

INSTALL_HINT = ("GradCAMPackage needs the optional 'grad-cam' package (import name "
                "pytorch_grad_cam): pip install 'wsss-core[gradcam]' && "
                "pip install --no-deps 'grad-cam>=1.5.7'  (--no-deps keeps the project's single "
                "OpenCV wheel, opencv-contrib-python-headless)")


def import_package():
    """The ``pytorch_grad_cam`` module, or an ImportError that says how to install it."""
    try:
        import pytorch_grad_cam
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: F401
    except ImportError as err:
        raise ImportError(f'{INSTALL_HINT} [{err}]') from err
    return pytorch_grad_cam


class FeatureTap(nn.Module):
    """Identity target layer; makes its output require grad if the model is frozen."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and not x.requires_grad:
            return x.detach().requires_grad_(True)
        return x


class LogitsModel(nn.Module):
    """The classifier as the package wants it: ``forward(x) -> logits`` plus a target module."""

    def __init__(self, model, target_layer: Optional[str] = None):
        super().__init__()
        self.model = model
        self.features = FeatureTap()
        self.target_layer = target_layer

    @property
    def target(self) -> nn.Module:
        if self.target_layer is None:
            return self.features
        return self.model.get_submodule(self.target_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.target_layer is not None:
            return classifier_scores(self.model, x)
        with patched_extract_feat(self.model, self.features):
            return classifier_scores(self.model, x)


@contextmanager
def preserved_state(model: nn.Module):
    """Restore the parameters' ``.grad`` and the train/eval flag after the block."""
    params = list(model.parameters())
    grads, training = [p.grad for p in params], model.training
    try:
        yield
    finally:
        for p, g in zip(params, grads):
            p.grad = g
        model.train(training)


@CAM_GENERATORS.register_module()
class GradCAMPackage(BaseCAMGenerator):
    """Any CAM class of the ``grad-cam`` package by name; maps (B, C, H, W) at input size.

    Args:
        method: a class name in ``pytorch_grad_cam`` (e.g. 'GradCAM', 'GradCAMPlusPlus').
        target_layer: dotted path of the target sub-module; None = ``model.extract_feat``.
        method_kwargs: extra constructor arguments of the package's class.
    """

    needs_grad = True

    def __init__(self, method: str = 'GradCAM', target_layer: Optional[str] = None,
                 method_kwargs: Optional[dict] = None):
        package = import_package()
        self.cam_class = getattr(package, method, None)
        if not isinstance(self.cam_class, type):
            raise ValueError(f'pytorch_grad_cam has no CAM class {method!r}')
        self.method, self.target_layer = method, target_layer
        self.method_kwargs = dict(method_kwargs or {})

    def __call__(self, model, img: torch.Tensor, class_ids=None) -> torch.Tensor:
        with autograd_on(img) as x:
            return self.class_maps(model, x, class_ids)

    def class_maps(self, model, img: torch.Tensor, class_ids=None) -> torch.Tensor:
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        num_classes = self._num_classes(model, img)
        wanted = class_mask(class_ids, img.shape[0], num_classes, img.device)
        maps = img.new_zeros((img.shape[0], num_classes) + img.shape[-2:], dtype=torch.float)
        net = LogitsModel(model, self.target_layer)
        with preserved_state(model):
            cam = self.cam_class(model=net, target_layers=[net.target], **self.method_kwargs)
            try:
                for c in wanted.any(0).nonzero().flatten().tolist():
                    sel = wanted[:, c]
                    out = cam(input_tensor=img[sel],
                              targets=[ClassifierOutputTarget(c)] * int(sel.sum()))
                    maps[sel, c] = torch.from_numpy(out).to(maps.device)
            finally:
                cam.__exit__(None, None, None)   # removes the package's hooks
        return maps

    @staticmethod
    def _num_classes(model, img: torch.Tensor) -> int:
        n = getattr(model, 'num_classes', None)
        if n is None:
            with torch.no_grad():
                n = classifier_scores(model, img[:1]).shape[1]
        return int(n)
