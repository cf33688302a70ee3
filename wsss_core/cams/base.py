"""CAM generator base class: one small class per CAM family (torchcam style).

A generator turns a classifier and a batch of normalised images into non-negative class
maps ``(B, C, h, w)`` at the classifier's output stride; :mod:`.multiscale` runs it over
scales and flips and :func:`normalize_cams` max-normalises the ground-truth classes.
"""
from __future__ import annotations

import torch


class BaseCAMGenerator:
    """Subclasses implement :meth:`class_maps`. ``needs_grad`` generators run with autograd on.

    ``class_ids`` (one list of class indices per image, or None for all classes) lets a
    generator skip the classes an image does not have (a backward pass per class for the
    gradient family); the maps of skipped classes are zero.  Plain CAM computes all anyway.
    """

    needs_grad = False
    #: the protocol a model must satisfy for this generator (None: not declared), checked
    #: once by :meth:`check_model` where a stage loads the model
    model_protocol = None

    def check_model(self, model, user: str):
        """``model`` when it satisfies :attr:`model_protocol`; else a
        :class:`~wsss_core.models.protocols.ModelContractError` naming ``user``, the model's
        class and the missing members."""
        if self.model_protocol is None:
            return model
        from ..models.protocols import require_model
        return require_model(model, self.model_protocol, f'{user} ({type(self).__name__})')

    def class_maps(self, model, img: torch.Tensor, class_ids=None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def __call__(self, model, img: torch.Tensor, class_ids=None) -> torch.Tensor:
        with torch.set_grad_enabled(self.needs_grad):
            return self.class_maps(model, img, class_ids)


def normalize_cams(cams: torch.Tensor, class_ids, eps: float = 1e-5) -> torch.Tensor:
    """Keep the ground-truth classes and divide each by its spatial maximum (psa/irn):

        M'_c = M_c / (max_{x,y} M_c(x, y) + eps)      for c in class_ids

    ``cams`` is (C, H, W); returns (K, H, W) in [0, 1).
    """
    ids = torch.as_tensor(list(class_ids), dtype=torch.long, device=cams.device)
    sel = cams.index_select(0, ids)
    peak = sel.flatten(1).max(dim=1).values.clamp_min(0).view(-1, 1, 1)
    return sel / (peak + eps)
