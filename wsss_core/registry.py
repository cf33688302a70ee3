"""The core registries: children of mmengine's roots with scope ``wsss_core``, plus WSSS ones.

Every component, the core's and every plugin's, registers here, so a config names it by a
plain ``type='...'``.  :func:`build` is the one place that turns a config dict into an
object; an unknown type raises :class:`UnknownComponentError`, which names the registry,
the closest registered names and, when known, the plugin that would provide the type.
"""
from __future__ import annotations

import difflib
from typing import Any, Callable, Optional

from mmengine import registry as mme
from mmengine.utils import ManagerMixin

SCOPE = 'wsss_core'


def _child(parent, name: str) -> mme.Registry:
    return mme.Registry(name, parent=parent, scope=SCOPE, locations=[])


MODELS = _child(mme.MODELS, 'model')
DATASETS = _child(mme.DATASETS, 'dataset')
DATA_SAMPLERS = _child(mme.DATA_SAMPLERS, 'data sampler')
TRANSFORMS = _child(mme.TRANSFORMS, 'transform')
HOOKS = _child(mme.HOOKS, 'hook')
METRICS = _child(mme.METRICS, 'metric')
EVALUATOR = _child(mme.EVALUATOR, 'evaluator')
LOOPS = _child(mme.LOOPS, 'loop')
OPTIMIZERS = _child(mme.OPTIMIZERS, 'optimizer')
OPTIM_WRAPPERS = _child(mme.OPTIM_WRAPPERS, 'optim_wrapper')
OPTIM_WRAPPER_CONSTRUCTORS = _child(mme.OPTIM_WRAPPER_CONSTRUCTORS, 'optimizer wrapper constructor')
PARAM_SCHEDULERS = _child(mme.PARAM_SCHEDULERS, 'parameter scheduler')
VISUALIZERS = _child(mme.VISUALIZERS, 'visualizer')
VISBACKENDS = _child(mme.VISBACKENDS, 'vis_backend')

# WSSS-specific roots.
CAM_GENERATORS = mme.Registry('cam generator', scope=SCOPE)
LABEL_REFINERS = mme.Registry('label refiner', scope=SCOPE)
SALIENCY_SOURCES = mme.Registry('saliency source', scope=SCOPE)
STAGES = mme.Registry('stage', scope=SCOPE)

ALL_REGISTRIES = {
    'MODELS': MODELS, 'DATASETS': DATASETS, 'DATA_SAMPLERS': DATA_SAMPLERS,
    'TRANSFORMS': TRANSFORMS, 'HOOKS': HOOKS, 'METRICS': METRICS, 'EVALUATOR': EVALUATOR,
    'LOOPS': LOOPS, 'OPTIMIZERS': OPTIMIZERS, 'OPTIM_WRAPPERS': OPTIM_WRAPPERS,
    'OPTIM_WRAPPER_CONSTRUCTORS': OPTIM_WRAPPER_CONSTRUCTORS,
    'PARAM_SCHEDULERS': PARAM_SCHEDULERS, 'VISUALIZERS': VISUALIZERS, 'VISBACKENDS': VISBACKENDS,
    'CAM_GENERATORS': CAM_GENERATORS, 'LABEL_REFINERS': LABEL_REFINERS,
    'SALIENCY_SOURCES': SALIENCY_SOURCES, 'STAGES': STAGES,
}

# Set by wsss_core.plugin_loader once discovery ran: maps a component name to the plugin that
# declares it (even when that plugin is not loaded), to make "unknown type" errors useful.
_provider_lookup: Optional[Callable[[str], Optional[str]]] = None


def set_provider_lookup(fn: Optional[Callable[[str], Optional[str]]]) -> None:
    """Install the function that names the plugin declaring a component (or ``None``)."""
    global _provider_lookup
    _provider_lookup = fn


class UnknownComponentError(KeyError):
    """A config names a ``type`` that no loaded plugin registered."""

    def __init__(self, type_name: str, registry: mme.Registry, suggestions: list,
                 provider: Optional[str]):
        self.type_name = type_name
        self.registry_name = registry.name
        self.suggestions = suggestions
        self.provider = provider
        msg = f"unknown type '{type_name}' in the '{registry.name}' registry (scope {SCOPE})."
        if suggestions:
            msg += ' Closest registered names: ' + ', '.join(suggestions) + '.'
        if provider:
            msg += (f" '{type_name}' is declared by the plugin '{provider}': install or enable it "
                    f"(wsss-run --list-plugins shows its status).")
        else:
            msg += ' No installed plugin declares it (wsss-run --list-plugins lists what is there).'
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


def registered_names(registry: mme.Registry) -> list:
    """Names registered in ``registry`` and in its parent root (mmengine's own classes)."""
    names = set(registry.module_dict)
    if registry.parent is not None:
        names |= set(registry.parent.module_dict)
    return sorted(names)


def lookup(registry: mme.Registry, type_name):
    """Return the class registered as ``type_name`` or raise :class:`UnknownComponentError`;
    a class given as the type (a config's ``type=SomeClass``) is returned as it is."""
    if isinstance(type_name, type):
        return type_name
    obj = registry.get(type_name)
    if obj is not None:
        return obj
    names = registered_names(registry)
    suggestions = difflib.get_close_matches(type_name, names, n=3, cutoff=0.5)
    provider = _provider_lookup(type_name) if _provider_lookup else None
    raise UnknownComponentError(type_name, registry, suggestions, provider)


def build(cfg: Any, registry: mme.Registry, **default_args):
    """Build ``cfg`` (a dict with ``type``) from ``registry``; objects pass through unchanged.

    Options that do not fit the component's constructor (one it does not take, a required
    one missing) raise :class:`~wsss_core.config_errors.ConfigBuildError` naming the
    component, the option and the options it takes; checked against the signature before
    the call (for registries that call the class with the dict's options), and recognised
    in the ``TypeError`` of the call (a class passing ``**kwargs`` on to its base).
    """
    from . import config_errors
    if cfg is None or not isinstance(cfg, dict):
        return cfg
    cfg = dict(cfg)
    obj_type = cfg.get('type')
    obj_cls = lookup(registry, obj_type) if isinstance(obj_type, str) else obj_type
    for key, value in default_args.items():
        cfg.setdefault(key, value)
    if callable(obj_cls) and registry.build_func in _PLAIN_BUILD_FUNCS and not (
            isinstance(obj_cls, type) and issubclass(obj_cls, ManagerMixin)):
        options = [k for k in cfg if k not in ('type', '_scope_')]
        problems = config_errors.signature_problems(obj_cls, options)
        if problems is not None:
            from .declared_parameters import retired_hint
            raise config_errors.ConfigBuildError(
                obj_type if isinstance(obj_type, str) else getattr(obj_cls, '__name__', '?'),
                problems[0], problems[1], registry=registry.name,
                accepted=config_errors.accepted_options(obj_cls),
                hint=retired_hint(obj_cls, problems[1]) if isinstance(obj_cls, type) else None)
    try:
        with mme.DefaultScope.overwrite_default_scope(SCOPE):
            return registry.build(cfg)
    except TypeError as exc:
        found = config_errors.from_type_error(exc, cfg)
        if found is None:
            raise
        raise found[0] from exc


#: registry build functions that call ``type(**options)`` for a dict (the signature check
#: of :func:`build` applies); others (schedulers, optimiser wrappers) add arguments themselves
_PLAIN_BUILD_FUNCS = (mme.build_from_cfg, mme.build_model_from_cfg)
