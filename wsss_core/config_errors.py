"""Errors in building a component from its config dict, named by the config key that holds it.

A component is built from a dict ``dict(type=..., **options)``.  When the options do not fit
the component's constructor (an option it does not take, a required one missing), the build
raises :class:`ConfigBuildError`, which names

* the config key path of the dict, e.g. ``data`` or ``stages.labels.refiners.0`` (a stage
  by its name, as configs and ``--cfg-options`` address it: :class:`StageKey`);
* the component (``type``) and the registry it comes from (dataset, model, label refiner ...);
* the bad option(s), and the options the component does take;
* a hint, e.g. ``_delete_=True`` when the option came from a ``_base_`` config
  (:func:`add_base_config_hint`).

Where the errors come from:

1. :func:`~wsss_core.registry.build` checks the options against the constructor's signature
   before calling it (:func:`signature_problems`), and turns a ``TypeError`` of the call
   itself (``X.__init__() got an unexpected keyword argument 'o'``, ``missing 1 required
   ... argument: 'o'``) into a :class:`ConfigBuildError`;
2. the pipeline checks the options of ``data`` when it is built (:func:`check_options`),
   before any stage runs;
3. the places that know where a dict sits in the run's config wrap the build in
   :func:`config_key` (the pipeline for each stage, :func:`~wsss_core.datasets.build_dataset`
   for ``data``): an error from the block is located in that dict (the sub-dict of the failing
   component, found by its ``type`` and option, :func:`locate`) and gets its full key path.
   Components built deeper (a backbone inside a model, a refiner inside a stage) are found
   the same way, whether or not their own build went through the core's ``build``.

``ConfigBuildError`` is a ``TypeError`` (what Python raises for a bad keyword argument) whose
message is one paragraph; ``wsss-run`` prints it without a traceback and exits with 2.
"""
from __future__ import annotations

import ast
import contextlib
import difflib
import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, List, Optional, Sequence, Tuple

__all__ = ['ConfigBuildError', 'StageKey', 'config_key', 'check_options', 'signature_problems',
           'accepted_options', 'locate', 'from_type_error', 'add_base_config_hint',
           'format_key_path']

UNEXPECTED, MISSING = 'unexpected', 'missing'

_UNEXPECTED_RE = re.compile(r"^(?P<func>[\w.<>]+)\(\) got an unexpected keyword argument "
                            r"'(?P<option>\w+)'")
_MISSING_RE = re.compile(r'^(?P<func>[\w.<>]+)\(\) missing \d+ required (?:positional |'
                         r'keyword-only )?arguments?: (?P<names>.+)$')


@dataclass(frozen=True)
class StageKey:
    """One stage in a key path: by index in ``stages``, by name, or both.

    Rendered by its name when known (``labels``: how configs and ``--cfg-options`` address a
    stage), else its index; :attr:`key` is the index when known
    (what indexes the config's ``stages`` list), else the name.
    """
    index: Optional[int] = None
    name: Optional[str] = None

    def __str__(self) -> str:
        return str(self.name if self.name else self.index)

    @property
    def key(self):
        return self.index if self.index is not None else self.name


def format_key_path(path: Sequence) -> str:
    """``['stages', StageKey(3, 'labels'), 'refiners', 0]`` ->
    ``stages.labels.refiners.0``."""
    return '.'.join(str(p) for p in path)


class ConfigBuildError(TypeError):
    """A component cannot be built from its config dict (see the module docstring).

    Attributes:
        component: the ``type`` of the dict.
        problem: ``'unexpected'`` (options it does not take) or ``'missing'`` (required
            options not given).
        options: the bad option names.
        registry: the registry's name ('dataset', 'model', ...), when known.
        accepted: the options the component takes, when known.
        path: the key path of the dict (segments), ``None`` until a :func:`config_key` block
            placed it; ``within`` means the dict itself was not found under ``path``.
        hint: one more sentence (e.g. the ``_delete_=True`` advice).
    """

    def __init__(self, component: str, problem: str, options: Sequence[str],
                 registry: Optional[str] = None, accepted: Optional[Sequence[str]] = None,
                 path: Optional[Sequence] = None, hint: Optional[str] = None):
        super().__init__(component, problem, tuple(options))
        self.component = component
        self.problem = problem
        self.options = tuple(options)
        self.registry = registry
        self.accepted = tuple(accepted) if accepted is not None else None
        self.path = list(path) if path is not None else None
        self.within = False
        self.hint = hint

    @property
    def key_path(self) -> Optional[str]:
        return None if self.path is None else format_key_path(self.path)

    @property
    def raw_path(self) -> Optional[list]:
        """The key path as config keys / list indices (a stage by index when known)."""
        if self.path is None:
            return None
        return [p.key if isinstance(p, StageKey) else p for p in self.path]

    def __str__(self) -> str:
        what = f"the {self.registry} '{self.component}'" if self.registry else \
            f"'{self.component}'"
        names = ', '.join(f"'{o}'" for o in self.options)
        plural = 's' if len(self.options) > 1 else ''
        if self.problem == UNEXPECTED:
            text = f'{what} does not take the option{plural} {names}'
            if self.accepted is not None:
                close = [f"'{o}' -> did you mean {' or '.join(repr(c) for c in cs)}?"
                         for o in self.options
                         for cs in [difflib.get_close_matches(o, self.accepted, 3, 0.6)] if cs]
                if close:
                    text += f" ({'; '.join(close)})"
                text += f" (its options: {', '.join(self.accepted) or 'none'})"
        else:
            text = f'{what} needs the option{plural} {names}, which the config does not give'
        if self.path is not None and not self.within:
            text = f'config key `{self.key_path}`: {text}'
        elif self.path is not None:
            text += f' (built while building config key `{self.key_path}`)'
        text += '.'
        if self.hint:
            text += ' ' + self.hint
        return text


# ----------------------------------------------------------------------------- signatures
def _init_parameters(obj) -> Optional[List[inspect.Parameter]]:
    """The parameters ``obj(...)`` takes (no ``self``), or None when not inspectable."""
    try:
        return list(inspect.signature(obj).parameters.values())
    except (TypeError, ValueError):
        return None


def accepted_options(obj) -> Optional[List[str]]:
    """The keyword options ``obj`` takes: its constructor's named parameters, and for a class
    whose ``__init__`` passes ``**kwargs`` on, those of its bases' ``__init__`` too."""
    params = _init_parameters(obj)
    if params is None:
        return None
    if inspect.isclass(obj):   # its declared parameters (wsss_core.declared_parameters)
        from .declared_parameters import declaration_of
        declared = list(declaration_of(obj).parameters)
        if declared or not any(p.kind == p.VAR_KEYWORD for p in params):
            return declared
    named = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if inspect.isclass(obj) and any(p.kind == p.VAR_KEYWORD for p in params):
        for base in obj.__mro__[1:]:
            init = base.__dict__.get('__init__')
            if init is None or base is object:
                continue
            base_params = _init_parameters(init)
            if base_params is None:
                break
            named += [p.name for p in base_params[1:] if p.name not in named
                      and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
            if not any(p.kind == p.VAR_KEYWORD for p in base_params):
                break
    return named


def signature_problems(obj, options: Sequence[str]) -> Optional[Tuple[str, List[str]]]:
    """``(problem, names)`` when keyword ``options`` do not fit ``obj``'s signature, else None.

    Rule: every option must name a declared parameter (else ``'unexpected'``): for a class,
    one of its declaration (:func:`~wsss_core.declared_parameters.declaration_of`: the
    constructors along a ``**kwargs`` chain, closed unless it ends in code outside the
    project); for a function, one of its parameters unless it takes ``**kwargs``.  Every
    parameter without a default (not ``*args`` / ``**kwargs``) must be given (else
    ``'missing'``).  Unexpected options are reported first.
    """
    params = _init_parameters(obj)
    if params is None:
        return None
    if inspect.isclass(obj):
        from .declared_parameters import declaration_of
        unexpected = declaration_of(obj).unknown([o for o in options])
        if unexpected:
            return UNEXPECTED, unexpected
    names = {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    positional_only = {p.name for p in params if p.kind == p.POSITIONAL_ONLY}
    if not any(p.kind == p.VAR_KEYWORD for p in params):
        unexpected = [o for o in options if o not in names or o in positional_only]
        if unexpected:
            return UNEXPECTED, unexpected
    missing = [p.name for p in params if p.default is p.empty
               and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in options]
    return (MISSING, missing) if missing else None


def parse_type_error(exc: BaseException) -> Optional[Tuple[str, str, List[str]]]:
    """``(function qualname, problem, option names)`` of a call's own signature TypeError
    (``X.__init__() got an unexpected keyword argument 'o'`` / ``missing 2 required
    positional arguments: 'a' and 'b'``), else None."""
    if not isinstance(exc, TypeError) or isinstance(exc, ConfigBuildError) or not exc.args:
        return None
    text = str(exc.args[0])
    m = _UNEXPECTED_RE.match(text)
    if m:
        return m['func'], UNEXPECTED, [m['option']]
    m = _MISSING_RE.match(text)
    if m:
        return m['func'], MISSING, re.findall(r"'(\w+)'", m['names'])
    return None


def _owner_name(func_qualname: str) -> str:
    """``'ListedSegmentationDataset.__init__'`` -> ``'ListedSegmentationDataset'``; a plain
    function keeps its name."""
    parts = func_qualname.split('.')
    return parts[-2] if len(parts) > 1 and parts[-1] in ('__init__', '__new__') else parts[-1]


def _registered(type_name) -> Tuple[Any, Optional[str]]:
    """``(class or function, registry name)`` registered as ``type_name`` in any core
    registry (a class or function given as ``type`` is its own), else ``(None, None)``."""
    if not isinstance(type_name, str):
        return (type_name, None) if callable(type_name) else (None, None)
    from .registry import ALL_REGISTRIES
    for reg in ALL_REGISTRIES.values():
        obj = reg.get(type_name)
        if obj is not None:
            return obj, reg.name
    return None, None


def _type_matches(type_name, owner: str) -> bool:
    """Whether a dict of ``type=type_name`` builds something whose code is ``owner`` (the
    class itself, one of its bases, or a function of that name)."""
    if isinstance(type_name, str) and type_name == owner:
        return True
    obj, _ = _registered(type_name)
    if obj is None:
        return False
    if inspect.isclass(obj):
        return any(c.__name__ == owner for c in obj.__mro__)
    return getattr(obj, '__name__', None) == owner


def _type_label(type_name) -> str:
    return type_name if isinstance(type_name, str) else getattr(type_name, '__name__',
                                                                 str(type_name))


def check_options(cfg, registry, *path) -> None:
    """Raise a :class:`ConfigBuildError` at config key ``path`` now, before anything is
    built, when the dict ``cfg`` gives options its ``type`` does not take (the signature rule
    of :func:`signature_problems`; missing options are left to the build, which may add
    them).  A type not registered (yet) or not inspectable is left to the build too."""
    if not isinstance(cfg, dict) or not isinstance(cfg.get('type'), str):
        return
    obj = registry.get(cfg['type'])
    if obj is None:
        return
    found = signature_problems(obj, [k for k in cfg if k not in ('type', '_scope_')])
    if found is not None and found[0] == UNEXPECTED:
        raise ConfigBuildError(cfg['type'], UNEXPECTED, found[1], registry=registry.name,
                               accepted=accepted_options(obj), path=list(path))


class ConfigValueError(ValueError):
    """A config value its component refuses, found before anything is built
    (:func:`check_values`); ``wsss-run`` reports it as a config error (exit 2)."""

    def __init__(self, path: Sequence, component: str, reason: str):
        self.path = list(path)
        self.component = component
        self.reason = reason
        super().__init__(f'config key `{format_key_path(self.path)}` ({component}): {reason}')

    @property
    def key_path(self) -> str:
        return format_key_path(self.path)


def check_values(cfg, registry, *path) -> None:
    """Raise :class:`ConfigValueError` at config key ``path`` now, before any stage runs, when the
    component's ``check_config(cfg)`` refuses ``cfg``: a classmethod a component may define
    for cheap checks of its option values (a data set's generator knobs, checked when the
    data is first built: after an hour of pretraining, say). A type without one, not
    registered (yet) or not a dict with a ``type`` is left to the build."""
    if not isinstance(cfg, dict) or not isinstance(cfg.get('type'), str):
        return
    check = getattr(registry.get(cfg['type']), 'check_config', None)
    if check is None:
        return
    try:
        check(cfg)
    except (ValueError, TypeError) as exc:     # a refused value, an unknown knob
        raise ConfigValueError(path, cfg['type'], str(exc)) from exc


# ----------------------------------------------------------------------------- locating
def _walk(node, path: list) -> Iterator[Tuple[list, dict]]:
    """Every dict with a ``type`` under ``node`` (itself first), depth first, with its path."""
    if isinstance(node, dict):
        if 'type' in node:
            yield path, node
        for key, value in node.items():
            yield from _walk(value, path + [key])
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _walk(value, path + [i])


def locate(cfg, component, problem: str, options: Sequence[str]) -> Optional[list]:
    """The path inside ``cfg`` of the dict that failed: a dict whose ``type`` is (or builds
    a subclass of) ``component`` and that holds the unexpected options (or lacks the missing
    ones).  ``component`` is a type name or the qualname owner from a TypeError.  None when
    no dict fits."""
    if cfg is None:
        return None
    tree = cfg.to_dict() if hasattr(cfg, 'to_dict') else cfg
    for path, node in _walk(tree, []):
        if not _type_matches(node.get('type'), component):
            continue
        present = [o in node for o in options]
        if (problem == UNEXPECTED and all(present)) or (problem == MISSING and not any(present)):
            return path
    return None


def from_type_error(exc: TypeError, cfg=None) -> Optional[Tuple[ConfigBuildError, list]]:
    """``(ConfigBuildError, path of the failing dict inside cfg)`` for a signature
    ``TypeError`` of a component built from a dict in ``cfg``, or None when it is not one (a
    ``TypeError`` from inside the component's code, or a dict not found in ``cfg``)."""
    parsed = parse_type_error(exc)
    if parsed is None:
        return None
    func, problem, options = parsed
    owner = _owner_name(func)
    path = locate(cfg, owner, problem, options)
    if path is None:
        return None
    tree = cfg.to_dict() if hasattr(cfg, 'to_dict') else cfg
    node = _get(tree, path)
    obj, registry = _registered(node.get('type'))
    accepted = accepted_options(obj) if obj is not None else None
    return ConfigBuildError(_type_label(node.get('type')), problem, options, registry=registry,
                            accepted=accepted), path


# ----------------------------------------------------------------------------- key scopes
@contextlib.contextmanager
def config_key(*path, cfg=None, fallback: bool = False):
    """Name the config key ``path`` in build errors from the block.

    ``cfg`` is the dict found at ``path`` in the run's config.  A :class:`ConfigBuildError`
    not yet placed, a signature ``TypeError`` or an
    :class:`~wsss_core.registry.UnknownComponentError` raised in the block is located in
    ``cfg`` (:func:`locate`) and gets ``path`` + its place in ``cfg``.  When it is not found
    there it passes on unchanged for an outer block, unless ``fallback``: then a
    ``ConfigBuildError`` is placed *under* ``path`` (a component built from a default, not
    from the config).  An error placed by an inner block passes through.
    """
    from .registry import UnknownComponentError
    try:
        yield
    except ConfigBuildError as exc:
        if exc.path is None:
            rel = locate(cfg, exc.component, exc.problem, exc.options)
            if rel is not None:
                exc.path = list(path) + list(rel)
            elif fallback:
                exc.path, exc.within = list(path), True
        raise
    except UnknownComponentError as exc:
        if getattr(exc, 'key_path', None) is None:
            tree = cfg.to_dict() if hasattr(cfg, 'to_dict') else cfg
            rel = next((p for p, node in _walk(tree, []) if node.get('type') == exc.type_name),
                       None) if tree is not None else None
            if rel is not None:
                exc.key_path = format_key_path(list(path) + rel)
                exc.args = (f'config key `{exc.key_path}`: {exc.args[0]}',) + exc.args[1:]
        raise
    except TypeError as exc:
        found = from_type_error(exc, cfg)
        if found is None:
            raise
        err, rel = found
        err.path = list(path) + rel
        raise err from exc


# ----------------------------------------------------------------------------- _base_ hint
def _get(tree, path: Sequence):
    node = tree
    for key in path:
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, (list, tuple)) and isinstance(key, int) and -len(node) <= key \
                < len(node):
            node = node[key]
        else:
            raise KeyError(key)
    return node


def _has(tree, path: Sequence) -> bool:
    try:
        _get(tree, path)
        return True
    except KeyError:
        return False


def _bases_and_own_keys(filename) -> Tuple[List[str], set]:
    """The ``_base_`` entries of a config file (as written) and its own top-level names."""
    try:
        tree = ast.parse(Path(filename).read_text(encoding='utf-8'))
    except (OSError, SyntaxError, ValueError):
        return [], set()
    bases, own = [], set()
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if not isinstance(target, ast.Name):
                continue
            if target.id == '_base_':
                try:
                    value = ast.literal_eval(node.value)
                except ValueError:
                    continue
                bases = [value] if isinstance(value, str) else list(value)
            else:
                own.add(target.id)
    return bases, own


def _load_base(entry: str, child: Path) -> Optional[dict]:
    """The merged dict of the base config ``entry`` of the config file ``child``."""
    from mmengine.config import Config

    from .config import install_config_shim, resolve_config_path
    try:
        path = resolve_config_path(entry) if '::' in entry else child.parent / entry
        install_config_shim()
        return Config.fromfile(str(path)).to_dict()
    except Exception:  # noqa: BLE001 - a hint only: never replace the error being explained
        return None


def add_base_config_hint(error: ConfigBuildError, cfg) -> None:
    """Add the ``_delete_=True`` advice to ``error`` when its unexpected option came from a
    ``_base_`` config of ``cfg`` (an mmengine Config loaded from a file).

    Rule: a base config (one of the file's ``_base_`` entries) holds the option at the
    error's key path with the value the merged config has.  mmengine merges a child's dict
    into the base's dict of the same key, so the base's options stay unless the child's dict
    says ``_delete_=True``.
    """
    if error.problem != UNEXPECTED or error.path is None or error.within or error.hint:
        return
    filename = getattr(cfg, 'filename', None)
    if not filename:
        return
    bases, own = _bases_and_own_keys(filename)
    raw = error.raw_path
    merged = cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)
    for entry in bases:
        base = _load_base(entry, Path(filename))
        if base is None:
            continue
        found = [o for o in error.options if _has(base, raw + [o]) and _has(merged, raw + [o])
                 and _get(base, raw + [o]) == _get(merged, raw + [o])]
        if not found:
            continue
        names = ', '.join(f'`{format_key_path(raw + [o])}`' for o in found)
        key = error.key_path
        if raw[0] in own:
            example = (f" (`{raw[0]} = dict(_delete_=True, type='{error.component}', ...)`)"
                       if len(raw) == 1 else '')
            error.hint = (f'{names} comes from the base config {entry}: mmengine merges this '
                          f"config's `{key}` into the base's, keeping the base's options; to "
                          f"replace the base's dict instead, put _delete_=True into this "
                          f"config's `{key}`{example}.")
        else:
            error.hint = (f'{names} is set by the base config {entry}; override `{key}` in '
                          "this config with _delete_=True to replace the base's dict.")
        return
