"""Declared parameters: what a stage or component takes, and the canonical form that is hashed.

A stage or component declares its parameters by naming them, with their defaults, in its
constructor (a parameter without a default is required).  :func:`declaration_of` reads them:

* the named parameters of the class's ``__init__`` (not ``self``, ``*args``, ``**kwargs``);
* a constructor that passes ``**kwargs`` on declares its bases' parameters too: the walk
  goes along the MRO to the next ``__init__`` while each one takes ``**kwargs`` (a subclass's
  default wins over its base's);
* a class whose ``**kwargs`` takes a known set of further options names them in its class
  attribute ``extra_parameters`` (a mapping name -> default, or a function returning one;
  e.g. DenseCRF's CRF kernel overrides): they are declared and the walk stops there;
* the walk stops at a class that marks its ``**options`` as storage
  (``stores_declared_options = True``: :class:`~wsss_core.pipeline.stage.Stage`, which keeps
  what its subclasses declared) -- the declaration is then *closed*: an option that none of
  the walked constructors names is unknown;
* a walk that ends at a ``**kwargs`` of a class that passes it to code outside the project
  (e.g. a wrapper of a timm model) leaves the declaration *open*: the constructor itself is
  the last word on what it accepts.

An unknown option of a closed declaration is refused when the stage or component is built,
naming the closest declared ones (:meth:`Declaration.closest`).

**Canonical form** (:meth:`Declaration.canonical`): the options whose values differ from
their declared defaults, compared after turning tuples into lists (a config's ``(1.0,)`` and
a default ``[1.0]`` are the same value) and never equating a bool with a number.  A stage's
config hash covers this form, its registered name and :data:`HASH_VERSION`
(:meth:`~wsss_core.pipeline.stage.Stage.hash_payload`), so a new parameter that keeps its
default changes no existing hash.
"""
from __future__ import annotations

import difflib
import functools
import inspect
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Sequence

__all__ = ['REQUIRED', 'HASH_VERSION', 'Declaration', 'declaration_of', 'same_value',
           'retired_hint']

#: version of the canonical form hashed into every stage's config hash; bump it when the
#: form changes (it invalidates every finished stage once)
HASH_VERSION = 2


class _Required:
    def __repr__(self) -> str:
        return 'REQUIRED'


#: the "default" of a parameter that has none
REQUIRED = _Required()


def _plain(value):
    """``value`` with tuples turned into lists, recursively (mappings to plain dicts)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def same_value(a, b) -> bool:
    """``a`` and ``b`` are the same option value: equal after tuples become lists, with a
    bool never equal to a number (``True`` is not ``1``)."""
    a, b = _plain(a), _plain(b)
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - e.g. arrays: not the same plain value
        return False


@dataclass(frozen=True)
class Declaration:
    """The parameters ``owner`` declares: ``parameters`` maps each name to its default
    (:data:`REQUIRED` when it has none); ``open`` is True when the constructor also passes
    undeclared keyword options on to code outside the project."""
    owner: type
    parameters: Dict[str, Any]
    open: bool = False

    def unknown(self, options: Sequence[str]) -> List[str]:
        """The option names it does not declare (none when the declaration is open)."""
        if self.open:
            return []
        return [o for o in options if o not in self.parameters]

    def closest(self, option: str, n: int = 3) -> List[str]:
        """The declared names closest to a misspelt ``option`` (difflib ratio >= 0.6)."""
        return difflib.get_close_matches(option, list(self.parameters), n=n, cutoff=0.6)

    def canonical(self, options: Mapping[str, Any]) -> Dict[str, Any]:
        """``options`` without the values equal to their declared defaults (see the module
        docstring); options it does not declare are kept."""
        out = {}
        for key, value in options.items():
            default = self.parameters.get(key, REQUIRED)
            if default is REQUIRED or not same_value(value, default):
                out[key] = value
        return out


def _init_params(init) -> List[inspect.Parameter]:
    try:
        params = list(inspect.signature(init).parameters.values())
    except (TypeError, ValueError):
        return []
    return params[1:] if params and params[0].name == 'self' else params


@functools.lru_cache(maxsize=None)
def declaration_of(cls: type) -> Declaration:
    """The :class:`Declaration` of class ``cls`` (see the module docstring)."""
    parameters: Dict[str, Any] = {}
    open_ = False
    for klass in cls.__mro__:
        if klass is object:
            break
        storage = klass.__dict__.get('stores_declared_options', False)
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        params = _init_params(init)
        for p in params:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in parameters:
                continue
            parameters[p.name] = REQUIRED if p.default is p.empty else p.default
        if storage:   # its **options hold what the walked constructors declared: closed
            open_ = False
            break
        open_ = any(p.kind == p.VAR_KEYWORD for p in params)
        extra = klass.__dict__.get('extra_parameters')
        if open_ and extra is not None:
            extra = extra() if callable(extra) else extra
            for key, default in extra.items():
                parameters.setdefault(key, default)
            open_ = False
        if not open_:
            break
    return Declaration(cls, parameters, open_)


def retired_hint(cls: type, options: Sequence[str]):
    """The hints of the class's ``retired_options`` (option -> how to do it now) for the
    refused ``options``, joined; None when none applies."""
    retired = getattr(cls, 'retired_options', None) or {}
    hints = [retired[o] for o in options if o in retired]
    return ' '.join(hints) or None
