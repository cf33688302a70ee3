"""What a plugin declares so that the conformance suite can exercise its components.

A plugin answers the hook ``wsss_conformance_examples()`` with one
:class:`ComponentExample` per component of its manifest: the tiny default config the
component is built from, the kind of checks it gets, and (for the kinds that run) a factory
of tiny inputs.  A component that cannot be exercised on generated CPU inputs says why in
``skip``; a declared component with no example is a conformance failure, so nothing is left
out silently.
"""
from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any, Callable, Mapping, Optional

#: kinds of checks, and what each asserts (see :mod:`.checks`)
KINDS = {
    'module': 'an nn.Module: forward on the inputs gives finite tensors, backward gives '
              'finite gradients, same outputs under the same seed',
    'classifier': "an image classifier: mode='tensor' gives (B, C) finite logits, "
                  "mode='loss' a dict of finite scalar losses with gradients",
    'loss': 'a loss: a finite scalar with finite gradients, same value under the same seed',
    'cam_generator': 'a CAM generator: (B, C, h, w) finite, non-negative maps per class',
    'label_refiner': 'a label refiner: an (H, W) uint8 label in 0..C or 255 (or, for a '
                     'CAM-refining step, (K, H, W) CAMs in [0, 1] at the image size)',
    'saliency_source': 'a saliency source: a uint8 (H, W) map of the image size',
    'transform': 'a sample transform: a dict whose pixel maps keep the image size, the same '
                 'under the same seed',
    'dataset': 'a dataset: builds, has samples, loads the first one',
    'build': 'builds from its config (hooks, stages, metrics, optimiser parts, samplers)',
}

#: the default kind of a component by the registry it is declared in (MODELS has none:
#: a model example states whether it is a 'module', a 'classifier' or a 'loss')
DEFAULT_KIND = {
    'CAM_GENERATORS': 'cam_generator', 'LABEL_REFINERS': 'label_refiner',
    'SALIENCY_SOURCES': 'saliency_source', 'TRANSFORMS': 'transform', 'DATASETS': 'dataset',
    'HOOKS': 'build', 'STAGES': 'build', 'METRICS': 'build', 'DATA_SAMPLERS': 'build',
    'OPTIM_WRAPPER_CONSTRUCTORS': 'build', 'PARAM_SCHEDULERS': 'build', 'LOOPS': 'build',
    'OPTIMIZERS': 'build', 'OPTIM_WRAPPERS': 'build', 'VISUALIZERS': 'build',
    'VISBACKENDS': 'build', 'EVALUATOR': 'build',
}


@dataclasses.dataclass(frozen=True)
class ComponentExample:
    """How to build and exercise one declared component.

    Attributes:
        name: the registered name (as in the plugin's manifest).
        cfg: the build arguments besides ``type`` (tiny: a few channels, a few pixels).
            A callable returning the dict is accepted too, for configs that hold objects.
        kind: one of :data:`KINDS`; ``None`` takes the registry's default
            (:data:`DEFAULT_KIND`), which MODELS does not have.
        inputs: ``inputs(generator) -> value`` with ``generator`` a seeded
            ``torch.Generator``; what the value is depends on the kind: ``module`` / ``loss``:
            a tuple of positional arguments or a dict of keyword arguments; ``classifier``:
            ``dict(img=(B, 3, H, W) float, labels=(B, C) 0/1)``; ``cam_generator``:
            ``dict(model=..., img=..., class_ids=...)`` (``model`` optional: a tiny core
            CAMClassifier by default); ``label_refiner``: the sample dict a refiner gets;
            ``saliency_source``: a refiner's sample dict (``from_sample``); ``transform``: a sample
            dict; ``dataset`` / ``build``: unused.  ``None`` uses the kind's default (see
            :mod:`.inputs`).
        num_classes: foreground classes C of the outputs (classifier logits, CAMs, labels).
        built_with: a callable ``built_with(obj, inputs)`` for components whose call differs
            from the kind's convention: returns what the kind's checks look at (for a
            ``classifier``: the loss dict, in place of ``obj(**inputs, mode='loss')``, e.g.
            after switching the model to another training phase).
        skip: a reason this component cannot be exercised here; it is reported, not run.
        roles: the model contracts the component claims, names of
            :data:`wsss_core.models.protocols.PROTOCOLS` (``'cam_model'``, ``'segmenter'``,
            ``'boundary_model'``, ``'param_group_provider'``, ``'step_maps'``, ``'phased'``):
            the built object must satisfy each protocol.
    """

    name: str
    cfg: Any = dataclasses.field(default_factory=dict)
    kind: Optional[str] = None
    inputs: Optional[Callable[[Any], Any]] = None
    num_classes: int = 3
    built_with: Optional[Callable[[Any, Any], Any]] = None
    skip: str = ''
    roles: tuple = ()

    def __post_init__(self) -> None:
        from ...models.protocols import PROTOCOLS
        unknown = [r for r in self.roles if r not in PROTOCOLS]
        if unknown:
            raise ValueError(f'ComponentExample({self.name!r}): unknown role(s) {unknown}; '
                             f'roles: {", ".join(PROTOCOLS)}')
        if self.kind is not None and self.kind not in KINDS:
            raise ValueError(f'ComponentExample({self.name!r}): unknown kind {self.kind!r}; '
                             f'kinds: {", ".join(KINDS)}')
        if not callable(self.cfg) and not isinstance(self.cfg, Mapping):
            raise TypeError(f'ComponentExample({self.name!r}): cfg must be a dict (or a '
                            f'callable returning one), got {type(self.cfg).__name__}')

    def build_cfg(self) -> dict:
        """``dict(type=name, **cfg)``, a fresh copy each call."""
        import copy
        cfg = self.cfg() if callable(self.cfg) else copy.deepcopy(dict(self.cfg))
        return dict(cfg, type=self.name)

    def resolved_kind(self, registry: str) -> Optional[str]:
        return self.kind or DEFAULT_KIND.get(registry)


def as_mapping(examples) -> Mapping[str, ComponentExample]:
    """Name -> example, refusing two examples of one name."""
    out = {}
    for ex in examples or ():
        if not isinstance(ex, ComponentExample):
            raise TypeError(f'wsss_conformance_examples() must return ComponentExample '
                            f'records, got {ex!r}')
        if ex.name in out:
            raise ValueError(f'two conformance examples for {ex.name!r}')
        out[ex.name] = ex
    return MappingProxyType(out)
