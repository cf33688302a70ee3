"""What stages and hooks call on a model, declared: runtime-checkable protocols.

A stage or hook that needs one of these checks the model once, where it builds or loads
it, with :func:`require_model`: a model that lacks a member fails there with the model's
class, the role and the missing names, not deep inside a run.  The conformance kit checks
each shipped model against the protocols of the roles its example claims
(``ComponentExample(roles=...)``).  ``isinstance`` checks only that the members exist;
the shapes and value ranges below are the contract a model must also keep.

=====================  ===========================================  ==========================
protocol               members                                      used by
=====================  ===========================================  ==========================
:class:`CAMModel`      ``cam_logits(img)``                          the CAM generator, MakeCAMs
:class:`Segmenter`     ``fused_logits(img)``, ``data_preprocessor`` TestSegmentor
:class:`BoundaryModel` ``boundary_map(img)``, ``data_preprocessor`` RandomWalkLabels (IRN)
:class:`ParamGroupProvider` ``param_groups(lr, weight_decay, mults)`` EDAM's optimiser constructor
:class:`StepMapsModel` ``step_map_keys``, ``parse_losses(losses)``  OAA's accumulation hook
:class:`PhasedModel`   ``phase`` (set by a hook)                    GETAM's schedule hook
=====================  ===========================================  ==========================
"""
from __future__ import annotations

from typing import Any, Dict, List, Protocol, Sequence, Tuple, runtime_checkable

import torch

__all__ = ['CAMModel', 'Segmenter', 'BoundaryModel', 'ParamGroupProvider', 'StepMapsModel',
           'PhasedModel', 'PROTOCOLS', 'ModelContractError', 'protocol_members',
           'missing_members', 'require_model']


@runtime_checkable
class CAMModel(Protocol):
    """A classifier whose class maps the CAM generator reads.

    ``cam_logits(img)``: ``img`` the normalised batch (B, 3, H, W); returns the un-rectified
    class maps (B, C, h, w), one per foreground class at the model's output stride, any real
    values (the generator applies ReLU; the logits are their spatial mean for a GAP model).
    """

    def cam_logits(self, img: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Segmenter(Protocol):
    """A semantic segmenter as TestSegmentor runs it.

    ``data_preprocessor(dict(img=uint8 (B, 3, H, W)))['img']`` normalises a batch;
    ``fused_logits(img)`` returns the scores (B, K, h, w) of K = C + 1 labels (background
    first) that test-time augmentation averages; any real values (argmax / softmax follow),
    at any resolution (post-processing resizes them to the image).
    """

    data_preprocessor: Any

    def fused_logits(self, img: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class BoundaryModel(Protocol):
    """IRN's boundary branch as RandomWalkLabels uses it.

    ``data_preprocessor.normalize(img)`` normalises a batch; ``boundary_map(img)`` returns
    the class-boundary probabilities (B, 1, ceil(H/4), ceil(W/4)) in [0, 1].
    """

    data_preprocessor: Any

    def boundary_map(self, img: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class ParamGroupProvider(Protocol):
    """A model that builds its own optimiser parameter groups.

    ``param_groups(lr, weight_decay, lr_mults)`` returns torch optimiser groups (dicts with
    ``params`` and their ``lr`` = ``lr`` x the group's multiplier from ``lr_mults``, and
    ``weight_decay``); every trainable parameter in exactly one group.
    """

    def param_groups(self, lr: float, weight_decay: float,
                     lr_mults: Dict[str, float]) -> List[dict]: ...


@runtime_checkable
class StepMapsModel(Protocol):
    """A model that hands the maps of each training step to a hook through the train step's
    outputs (:mod:`wsss_core.models.step_maps`).

    ``step_map_keys`` names the published maps (OAA: ``('cam', 'logits')``: the raw class
    maps (B, C, h, w) and the logits (B, C) of the step's batch, detached);
    ``parse_losses(losses)`` returns ``(loss, outputs)`` with ``outputs.step_maps`` that dict
    (:class:`~wsss_core.models.step_maps.PublishesStepMaps` provides it).
    """

    step_map_keys: Tuple[str, ...]

    def parse_losses(self, losses: dict) -> tuple: ...


@runtime_checkable
class PhasedModel(Protocol):
    """A model whose training phase a hook switches (hook -> model): GETAM's
    ``phase`` in ``('cls', 'joint')``, set before every training iteration; the model's
    ``forward(mode='loss')`` reads it."""

    phase: str


#: the protocols by role name (the conformance kit's ``roles``)
PROTOCOLS = dict(cam_model=CAMModel, segmenter=Segmenter, boundary_model=BoundaryModel,
                 param_group_provider=ParamGroupProvider, step_maps=StepMapsModel,
                 phased=PhasedModel)


class ModelContractError(TypeError):
    """A model lacks a member of the protocol a stage or hook needs."""


def protocol_members(protocol) -> List[str]:
    """The public members (methods and attributes) a protocol declares, sorted."""
    names = set()
    for base in protocol.__mro__:
        if base is Protocol or not getattr(base, '_is_protocol', False):
            continue
        names |= {n for n in vars(base) if not n.startswith('_')}
        names |= {n for n in getattr(base, '__annotations__', {}) if not n.startswith('_')}
    return sorted(names)


def _unwrapped(model):
    """The model inside an mmengine / torch wrapper (DDP), else ``model``."""
    module = getattr(model, 'module', None)
    return module if isinstance(module, torch.nn.Module) else model


def missing_members(model, protocol) -> List[str]:
    """The members of ``protocol`` that ``model`` (unwrapped) lacks; methods must be callable."""
    model = _unwrapped(model)
    out = []
    for name in protocol_members(protocol):
        declared = getattr(protocol, name, None)
        if not hasattr(model, name) or (callable(declared) and not callable(getattr(model, name))):
            out.append(name)
    return out


def require_model(model, protocol, user: str, needs: Sequence[str] = ()):
    """Return ``model`` when it satisfies ``protocol``; else raise :class:`ModelContractError`
    naming ``user`` (the stage or hook), the model's class and the missing members.

    ``needs``: for :class:`StepMapsModel`, the map keys the user reads (all must be in the
    model's ``step_map_keys``)."""
    missing = missing_members(model, protocol)
    name = type(_unwrapped(model)).__name__
    if missing:
        doc = ' '.join((protocol.__doc__ or '').split()).split('. ')[0].rstrip('.')
        raise ModelContractError(
            f'{user} needs a model with {", ".join(protocol_members(protocol))} '
            f'({protocol.__name__}: {doc}); {name} has no {", ".join(missing)}')
    keys = tuple(getattr(_unwrapped(model), 'step_map_keys', ()) or ())
    lacking = [k for k in needs if k not in keys]
    if lacking:
        raise ModelContractError(f'{user} reads the step maps {tuple(needs)}; {name} publishes '
                                 f'{keys} (step_map_keys), without {", ".join(lacking)}')
    return model
