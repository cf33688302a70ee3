"""Plugin discovery, listing and loading.

Plugins are found through the entry-point group ``wsss.plugins``; the core itself is the
built-in plugin ``core`` (module :data:`CORE_MODULE`), always listed first and never disabled.
What is registered with pluggy is the entry module's :data:`HOOKS_ATTRIBUTE` object, the hooks
made from its component table (:mod:`wsss_core.plugin_table`), or else the module itself.

Two phases, so that listing stays cheap:

* **discovery** (:func:`list_plugins`) imports each *light* entry module, reads its
  :class:`~wsss_core.hookspecs.PluginManifest` and checks the API version, the plugin
  dependencies, the ``WSSS_PLUGINS`` / ``enabled=`` restriction and duplicate component
  declarations.  It never calls ``wsss_register``, never imports ``wsss_core.registry``
  (nor torch): healthy plugins are reported as ``'not-loaded'``.
* **loading** (:func:`load_plugins`) then calls ``wsss_register`` of each healthy plugin,
  dependencies first, at most once per process (loading again does not re-register).

Isolation: whatever goes wrong with one plugin (its module fails to import, a hook raises,
its API version differs, a plugin it requires is unusable) sets *that* plugin's status and
a reason naming the plugin, its module and the cause; it is logged as a warning and the
other plugins load normally.

Duplicate component names are not raised: a plugin that declares (in its manifest) or
actually registers a name that an earlier plugin in load order already provides in the same
registry is marked ``'broken'`` with a reason naming both plugins; the earlier plugin keeps
the name.  Load order: the core first, then plugin names alphabetically, each plugin after
the plugins it ``requires``.
Components that a plugin registered before its ``wsss_register`` failed are removed again.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import logging
import os
import sys
import threading
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import pluggy

from . import hookspecs
from .hookspecs import PLUGIN_API_VERSION, PluginManifest

__all__ = [
    'ENTRY_POINT_GROUP', 'ENV_VAR', 'CORE_NAME', 'CORE_MODULE', 'STATUSES', 'PluginRecord',
    'PluginSet', 'PluginSelectionError', 'list_plugins', 'load_plugins', 'discovered_plugins',
    'format_plugin_table', 'component_provider', 'HOOKS_ATTRIBUTE', 'plugin_hook_results',
    'plugin_hook_answers',
]

ENTRY_POINT_GROUP = 'wsss.plugins'
ENV_VAR = 'WSSS_PLUGINS'
CORE_NAME = 'core'
CORE_MODULE = 'wsss_core.core_plugin'
CORE_DISTRIBUTION = 'wsss-core'
#: the entry module's attribute holding its hooks, when made from a component table
HOOKS_ATTRIBUTE = 'hookimpls'

OK, BROKEN, INCOMPATIBLE, DISABLED, MISSING_DEP, NOT_LOADED = (
    'ok', 'broken', 'incompatible', 'disabled', 'missing-dependency', 'not-loaded')
STATUSES = (OK, BROKEN, INCOMPATIBLE, DISABLED, MISSING_DEP, NOT_LOADED)
_HEALTHY = (OK, NOT_LOADED)

logger = logging.getLogger(__name__)


class PluginSelectionError(ValueError):
    """``WSSS_PLUGINS`` or ``enabled=`` names a plugin that is not installed."""


@dataclasses.dataclass(frozen=True)
class PluginRecord:
    """One plugin as discovered (and possibly loaded) in this process.

    ``status`` is one of :data:`STATUSES`: ``'ok'`` (registered), ``'not-loaded'`` (healthy,
    not registered in this process), ``'broken'``, ``'incompatible'``, ``'disabled'`` or
    ``'missing-dependency'``; ``reason`` explains every status but the healthy two.
    """

    name: str
    version: str
    distribution: Optional[str]
    module: str
    status: str
    reason: str = ''
    manifest: Optional[PluginManifest] = None

    @property
    def components(self) -> Mapping[str, Sequence[str]]:
        """Declared components (registry name -> names); empty without a manifest."""
        return self.manifest.components if self.manifest else {}

    @property
    def requires(self) -> Tuple[str, ...]:
        return tuple(self.manifest.requires) if self.manifest else ()

    @property
    def healthy(self) -> bool:
        """``True`` for ``'ok'`` and ``'not-loaded'``."""
        return self.status in _HEALTHY


@dataclasses.dataclass(frozen=True)
class PluginSet:
    """The result of :func:`load_plugins`: records in load order, plus the pluggy manager
    holding the loaded (``'ok'``) plugins, for calling further hooks on all of them."""

    records: Tuple[PluginRecord, ...]
    manager: pluggy.PluginManager = dataclasses.field(repr=False, compare=False)

    def __iter__(self) -> Iterator[PluginRecord]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, name: object) -> bool:
        return any(r.name == name for r in self.records)

    def __getitem__(self, name: str) -> PluginRecord:
        for r in self.records:
            if r.name == name:
                return r
        raise KeyError(f'no plugin named {name!r}; plugins: {", ".join(self.names())}')

    def names(self, status: Optional[str] = None) -> Tuple[str, ...]:
        """Plugin names, optionally only those with ``status``."""
        return tuple(r.name for r in self.records if status is None or r.status == status)

    @property
    def loaded(self) -> Tuple[str, ...]:
        """Names of the plugins whose components are registered."""
        return self.names(OK)

    def table(self) -> str:
        return format_plugin_table(self.records)


# ----------------------------------------------------------------------------- state
@dataclasses.dataclass
class _Candidate:
    """Discovery's working item: the record so far and the loaded plugin object."""
    record: PluginRecord
    obj: Any = None

    def set(self, status: str, reason: str = '', **changes) -> None:
        self.record = dataclasses.replace(self.record, status=status, reason=reason, **changes)


@dataclasses.dataclass
class _ProcessState:
    """What this process already did: registrations are global and happen once."""
    loaded: Dict[Tuple[str, str], PluginRecord] = dataclasses.field(default_factory=dict)
    owners: Dict[Tuple[str, str], str] = dataclasses.field(default_factory=dict)
    discovered: Optional[Tuple[PluginRecord, ...]] = None


_STATE = _ProcessState()
_LOCK = threading.RLock()


# ----------------------------------------------------------------------------- public API
def list_plugins(entry_points: Optional[Iterable[importlib.metadata.EntryPoint]] = None,
                 enabled: Optional[Sequence[str]] = None) -> List[PluginRecord]:
    """Discover the plugins and return their records, core first, in load order.

    Reads manifests only: nothing is registered and torch is not imported.  A healthy plugin
    is ``'not-loaded'`` unless :func:`load_plugins` already registered it (``'ok'``).
    ``entry_points`` replaces the ``wsss.plugins`` entry points (tests); ``enabled`` as in
    :func:`load_plugins`.
    """
    with _LOCK:
        candidates, _ = _discover(entry_points, enabled)
        _log_problems(candidates)
        return [c.record for c in candidates]


def load_plugins(enabled: Optional[Sequence[str]] = None,
                 entry_points: Optional[Iterable[importlib.metadata.EntryPoint]] = None
                 ) -> PluginSet:
    """Discover the plugins and register the components of every healthy, enabled one.

    Args:
        enabled: names of the plugins to load (their ``requires`` and the core come along);
            the others are ``'disabled'``.  ``None`` reads the ``WSSS_PLUGINS`` environment
            variable (comma-separated); ``None``/empty/unset means all plugins.  An explicit
            argument (the config key ``plugins=[...]``) takes precedence over the variable.
        entry_points: replaces the ``wsss.plugins`` entry points (tests).

    Raises:
        PluginSelectionError: the restriction names a plugin that is not installed.
    """
    from . import registry  # lazy: imports mmengine's registries

    with _LOCK:
        candidates, manager = _discover(entry_points, enabled)
        registry.set_provider_lookup(component_provider)
        by_name = _index(candidates)
        for c in candidates:
            if c.record.status == NOT_LOADED:
                _load_one(c, manager, by_name, registry)
        for c in candidates:
            if c.record.status != OK and c.obj is not None and manager.is_registered(c.obj):
                manager.unregister(c.obj)
        _log_problems(candidates)
        return PluginSet(tuple(c.record for c in candidates), manager)


def discovered_plugins(refresh: bool = False) -> Tuple[PluginRecord, ...]:
    """The records of the last discovery in this process (discovering now, with no plugin
    restriction, if none ran yet or ``refresh``).  Used to resolve ``NAME::`` config specs
    and by :func:`component_provider`."""
    with _LOCK:
        if refresh or _STATE.discovered is None:
            _discover(None, None, select=False)
        return _STATE.discovered


def plugin_hook_results(hook: str, enabled: Optional[Sequence[str]] = None) -> List[Any]:
    """The answers of every healthy, enabled plugin's entry module to ``hook``, core first,
    in load order (one per plugin that implements it), without registering any component:
    for hooks that return plain data (``wsss_prepare_items``).  A plugin whose hook raises
    is skipped with a warning naming it."""
    return [answer for _, answer in plugin_hook_answers(hook, enabled)]


def plugin_hook_answers(hook: str, enabled: Optional[Sequence[str]] = None
                        ) -> List[Tuple[str, Any]]:
    """``(plugin name, answer)`` of :func:`plugin_hook_results`: for a caller that checks
    each plugin's answer and names the plugin when it leaves one out."""
    with _LOCK:
        candidates, manager = _discover(None, enabled)
        answers: List[Tuple[str, Any]] = []
        for c in candidates:
            if not c.record.healthy or c.obj is None or not manager.is_registered(c.obj):
                continue
            try:
                answers.extend((c.record.name, a) for a in _call_one(manager, hook, c.obj)
                               if a is not None)
            except Exception as exc:  # noqa: BLE001 - one bad plugin must not stop the rest
                logger.warning("plugin '%s': %s() failed: %s", c.record.name, hook,
                               _describe(exc))
        return answers


def component_provider(type_name: str) -> Optional[str]:
    """Name of the discovered plugin that declares component ``type_name``, loaded or not."""
    for record in discovered_plugins():
        if record.manifest and type_name in record.manifest.component_names():
            return record.name
    return None


def format_plugin_table(records: Iterable[PluginRecord]) -> str:
    """One aligned line per plugin: name, version, status, then its components (``'ok'`` /
    ``'not-loaded'``) or the reason (any other status).  What ``wsss-run --list-plugins``
    prints."""
    rows = [(r.name, r.version, r.status, _detail(r)) for r in records]
    if not rows:
        return '(no plugins)'
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return '\n'.join(f'{n:<{widths[0]}}  {v:<{widths[1]}}  {s:<{widths[2]}}  {d}'.rstrip()
                     for n, v, s, d in rows)


def _detail(record: PluginRecord) -> str:
    if record.status in _HEALTHY:
        names = record.manifest.component_names() if record.manifest else ()
        return ', '.join(names) if names else '(no components)'
    return record.reason


# ----------------------------------------------------------------------------- discovery
def _discover(entry_points, enabled, select: bool = True
              ) -> Tuple[List[_Candidate], pluggy.PluginManager]:
    """Import every entry module, read the manifests and work out each plugin's status."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    candidates: List[_Candidate] = []
    for name, module, dist, load in _sources(entry_points):
        twin = next((c for c in candidates if c.record.name == name), None)
        if twin is not None:
            candidates.append(_Candidate(_record(name, module, dist, BROKEN, (
                f"plugin '{name}' (module {module}) is installed twice: also by module "
                f"{twin.record.module} (distribution {twin.record.distribution}); "
                f"the first one found is used"))))
            continue
        candidates.append(_read_manifest(manager, name, module, dist, load))
    candidates = _load_order(candidates)
    if select:
        _apply_selection(candidates, enabled)
    _apply_process_state(candidates)
    _check_requirements_and_duplicates(candidates)
    _STATE.discovered = tuple(c.record for c in candidates)
    if 'wsss_core.registry' in sys.modules:  # never import it (and mmengine) just to list
        sys.modules['wsss_core.registry'].set_provider_lookup(component_provider)
    return candidates, manager


def _sources(entry_points) -> Iterator[Tuple[str, str, Optional[str], Callable[[], Any]]]:
    """(name, module, distribution, loader) of the core, then of each entry point."""
    yield CORE_NAME, CORE_MODULE, CORE_DISTRIBUTION, lambda: importlib.import_module(CORE_MODULE)
    if entry_points is None:
        entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    for ep in sorted(entry_points, key=lambda e: e.name):
        if ep.name == CORE_NAME and ep.value == CORE_MODULE:
            continue  # the core's own entry point, if it declares one: already included
        dist = getattr(ep, 'dist', None)
        yield ep.name, ep.value, (dist.name if dist is not None else None), ep.load


def _record(name, module, dist, status, reason='', **fields) -> PluginRecord:
    version = fields.pop('version', None) or _dist_version(dist)
    return PluginRecord(name=name, version=version, distribution=dist, module=module,
                        status=status, reason=reason, **fields)


def _dist_version(dist: Optional[str]) -> str:
    try:
        return importlib.metadata.version(dist) if dist else '?'
    except importlib.metadata.PackageNotFoundError:
        if dist == CORE_DISTRIBUTION:  # running from a source tree that is not installed
            from . import __version__
            return __version__
        return '?'


def _describe(exc: BaseException) -> str:
    return f'{type(exc).__name__}: {exc}'


def _read_manifest(manager, name, module, dist, load) -> _Candidate:
    """Import one entry module and read its manifest; never raises."""
    where = f"plugin '{name}' (module {module})"
    try:
        obj = load()
    except Exception as exc:  # noqa: BLE001 - isolate any failure of a third-party plugin
        return _Candidate(_record(name, module, dist, BROKEN,
                                  f'{where} failed to import: {_describe(exc)}'))
    try:
        obj = _hook_object(obj)
    except TypeError as exc:
        return _Candidate(_record(name, module, dist, BROKEN, f'{where}: {exc}'))
    cand = _Candidate(_record(name, module, dist, NOT_LOADED), obj)
    try:
        manager.register(obj, name=name)
        manifest = _call_one(manager, 'wsss_manifest', obj)
    except Exception as exc:  # noqa: BLE001
        cand.set(BROKEN, f'{where} wsss_manifest() failed: {_describe(exc)}')
        return cand
    if not isinstance(manifest, PluginManifest):
        cand.set(BROKEN, f'{where}: wsss_manifest() returned {manifest!r}, '
                         f'expected a wsss_core.hookspecs.PluginManifest')
    elif manifest.name != name:
        cand.set(BROKEN, f"{where}: its manifest is named '{manifest.name}', expected "
                         f"'{name}' (the entry-point name)", version=manifest.version,
                 manifest=manifest)
    elif manifest.api_version != PLUGIN_API_VERSION:
        cand.set(INCOMPATIBLE, f'{where} was written for plugin API version '
                               f'{manifest.api_version}, but this wsss-core provides API '
                               f'version {PLUGIN_API_VERSION}: install a release of the '
                               f'plugin written for API {PLUGIN_API_VERSION}, or a wsss-core '
                               f'that provides API {manifest.api_version}',
                 version=manifest.version, manifest=manifest)
    else:
        cand.record = dataclasses.replace(cand.record, version=manifest.version,
                                          manifest=manifest)
    return cand


def _hook_object(loaded: Any) -> Any:
    """What to register for a loaded entry point: the entry module's ``hookimpls`` (made
    from its component table by :func:`wsss_core.plugin_table.plugin_hooks`) when it has
    one, else the entry module itself (hooks written as module-level ``@hookimpl``
    functions).  Both at once is refused: the module's own hooks would be ignored; so is an
    object with neither (the entry point names the package, not its entry module, or
    ``hookimpls`` is misspelt or not called)."""
    marker = f'{hookspecs.PROJECT_NAME}_impl'  # what @hookimpl sets on a function
    hooks = getattr(loaded, HOOKS_ATTRIBUTE, None)
    if hooks is None:
        if not _has_manifest_hook(loaded, marker):
            what = getattr(loaded, '__name__', type(loaded).__name__)
            raise TypeError(
                f'the entry point loads {what}, which has neither `{HOOKS_ATTRIBUTE} = '
                'plugin_hooks(...)` nor an @hookimpl wsss_manifest: point the entry point at '
                "the plugin's entry module (e.g. wsss_x.plugin), where hookimpls is made")
        return loaded
    own = sorted(n for n in dir(loaded) if hasattr(getattr(loaded, n, None), marker))
    if own:
        raise TypeError(f'it defines both {HOOKS_ATTRIBUTE} (its component table) and '
                        f'module-level hooks {own}: keep one')
    return hooks


def _has_manifest_hook(obj: Any, marker: str) -> bool:
    """Whether ``obj`` has an @hookimpl for ``wsss_manifest`` (by its name, or another name
    with ``specname='wsss_manifest'``)."""
    for attr in dir(obj):
        opts = getattr(getattr(obj, attr, None), marker, None)
        if opts is None:
            continue
        specname = opts.get('specname') if isinstance(opts, dict) else None
        if (specname or attr) == 'wsss_manifest':
            return True
    return False


def _index(candidates: List[_Candidate]) -> Dict[str, _Candidate]:
    """Name -> candidate; for a name installed twice, the first one found."""
    by_name: Dict[str, _Candidate] = {}
    for c in candidates:
        by_name.setdefault(c.record.name, c)
    return by_name


def _call_one(manager: pluggy.PluginManager, hook: str, obj: Any):
    """Call ``hook`` of one registered plugin only."""
    others = [p for p in manager.get_plugins() if p is not obj]
    return manager.subset_hook_caller(hook, remove_plugins=others)()


def _load_order(candidates: List[_Candidate]) -> List[_Candidate]:
    """Core first, then by name, each plugin after the plugins it requires; cycles -> broken."""
    by_name = _index(candidates)
    ordered: List[_Candidate] = []
    visiting: List[str] = []

    def visit(c: _Candidate) -> None:
        if c in ordered:
            return
        name = c.record.name
        if name in visiting:
            cycle = visiting[visiting.index(name):] + [name]
            for member in cycle[:-1]:
                by_name[member].set(BROKEN, f"plugin '{member}' is part of a dependency cycle: "
                                            + ' -> '.join(cycle))
            return
        visiting.append(name)
        for dep in c.record.requires:
            if dep in by_name:
                visit(by_name[dep])
        visiting.pop()
        if c not in ordered:
            ordered.append(c)

    rest = sorted(candidates, key=lambda c: (c.record.name != CORE_NAME, c.record.name))
    for c in rest:
        visit(c)
    return ordered


def _requested(enabled) -> Tuple[Optional[List[str]], str]:
    """The restriction (``None`` = all) and where it came from, for messages."""
    if enabled is None:
        enabled = os.environ.get(ENV_VAR, '')
        source = f'{ENV_VAR}={enabled}'
    else:   # wsss-run passes the config's ``plugins``
        source = f'plugins={enabled!r} (the config\'s `plugins`, or load_plugins(enabled=))'
    if isinstance(enabled, str):
        enabled = enabled.split(',')
    names = [str(n).strip() for n in enabled if str(n).strip()]
    return (names or None), source


def _apply_selection(candidates: List[_Candidate], enabled) -> None:
    names, source = _requested(enabled)
    if names is None:
        return
    by_name = _index(candidates)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise PluginSelectionError(
            f'{source} names plugin(s) that are not installed: '
            f'{", ".join(map(repr, unknown))}; installed plugins: '
            f'{", ".join(sorted(by_name))}. Install its package (wsss-NAME; in this '
            f'repository: pip install -e plugins/NAME) or leave it out')
    wanted, todo = set(), [CORE_NAME, *names]
    while todo:  # the requested plugins, the core and everything they require
        name = todo.pop()
        if name in by_name and name not in wanted:
            wanted.add(name)
            todo.extend(by_name[name].record.requires)
    for c in candidates:
        if c.record.name not in wanted:
            was = '' if c.record.status == NOT_LOADED else f' (it is also {c.record.status}: ' \
                                                            f'{c.record.reason})'
            c.set(DISABLED, f'not enabled by {source}{was}')


def _apply_process_state(candidates: List[_Candidate]) -> None:
    """Registering happens once per process: a plugin registered earlier stays 'ok' (even if
    not enabled now: it cannot be unregistered); one whose registering failed stays broken."""
    for c in candidates:
        done = _STATE.loaded.get((c.record.name, c.record.module))
        if done is not None and (done.status == OK or c.record.status == NOT_LOADED):
            c.set(done.status, done.reason)


def _check_requirements_and_duplicates(candidates: List[_Candidate]) -> None:
    """In load order: a plugin needs healthy dependencies and names nobody took before it."""
    by_name = _index(candidates)
    owners = dict(_STATE.owners)  # what this process actually registered
    for c in candidates:
        rec = c.record
        if rec.status != NOT_LOADED:
            continue
        problems = [_dependency_problem(dep, by_name.get(dep)) for dep in rec.requires]
        problems = [p for p in problems if p]
        if problems:
            c.set(MISSING_DEP, f"plugin '{rec.name}' (module {rec.module}) requires "
                               + '; '.join(problems))
            continue
        clashes = [(reg, comp, owners[(reg, comp)])
                   for reg, names in rec.components.items() for comp in names
                   if owners.get((reg, comp), rec.name) != rec.name]
        if clashes:
            c.set(BROKEN, _duplicate_reason(rec, clashes))
            continue
        for reg, names in rec.components.items():
            for comp in names:
                owners[(reg, comp)] = rec.name


def _dependency_problem(dep: str, cand: Optional[_Candidate]) -> str:
    if cand is None:
        return f"'{dep}', which is not installed"
    if cand.record.healthy:
        return ''
    return f"'{dep}', which is {cand.record.status}"


def _duplicate_reason(rec: PluginRecord, clashes) -> str:
    listed = '; '.join(f"{reg} '{comp}' is provided by both '{other}' and '{rec.name}'"
                       for reg, comp, other in clashes)
    return (f"plugin '{rec.name}' (module {rec.module}) has duplicate component names: {listed}"
            f" (the earlier plugin keeps them; '{rec.name}' is not loaded)")


# ----------------------------------------------------------------------------- loading
def _load_one(c: _Candidate, manager, by_name: Dict[str, _Candidate], registry) -> None:
    """Register one healthy plugin, once per process; never raises."""
    rec = c.record
    problems = [_dependency_problem(d, by_name.get(d)) for d in rec.requires]
    problems = [p for p in problems if p]
    if problems:  # a dependency broke while registering
        c.set(MISSING_DEP, f"plugin '{rec.name}' (module {rec.module}) requires "
                           + '; '.join(problems))
        return
    unknown = sorted(set(rec.components) - set(registry.ALL_REGISTRIES))
    if unknown:
        c.set(BROKEN, f"plugin '{rec.name}' (module {rec.module}) declares components in "
                      f"unknown registries {unknown}; known: {', '.join(registry.ALL_REGISTRIES)}")
        return
    before = _snapshot(registry)
    try:
        _call_one(manager, 'wsss_register', c.obj)
    except Exception as exc:  # noqa: BLE001
        borrowed = _declared_by_others(rec, by_name, registry, before)
        _rollback(registry, before, keep=borrowed)
        c.set(BROKEN, _register_failure(rec, exc) + _requires_hint(borrowed))
    else:
        for reg, names in _snapshot(registry).items():
            for comp in names - before[reg]:
                _STATE.owners[(reg, comp)] = rec.name
        _warn_undeclared(rec, registry)
        c.set(OK)
    _STATE.loaded[(rec.name, rec.module)] = c.record


def _snapshot(registry) -> Dict[str, set]:
    return {key: set(reg.module_dict) for key, reg in registry.ALL_REGISTRIES.items()}


def _rollback(registry, before: Dict[str, set], keep: Optional[Mapping] = None) -> None:
    """Remove what a failed ``wsss_register`` managed to register, except the ``keep``
    components ((registry, name) -> the plugin that declares them): registered by importing
    another plugin's modules, they stay for that plugin (its modules are imported now, so
    importing them again would not register them again), owned by it."""
    keep = keep or {}
    for key, reg in registry.ALL_REGISTRIES.items():
        for name in set(reg.module_dict) - before[key]:
            if (key, name) in keep:
                _STATE.owners[(key, name)] = keep[(key, name)]
            else:
                reg.module_dict.pop(name, None)


def _declared_by_others(rec: PluginRecord, by_name: Dict[str, '_Candidate'], registry,
                        before: Dict[str, set]) -> Dict[Tuple[str, str], str]:
    """(registry, name) -> plugin, for each component a failed ``wsss_register`` of ``rec``
    registered that another discovered plugin declares (``rec`` imports its code)."""
    declared = {(reg, n): name for name, cand in by_name.items()
                if name != rec.name and cand.record.manifest is not None
                for reg, names in cand.record.manifest.components.items() for n in names}
    return {(key, n): declared[(key, n)] for key, reg in registry.ALL_REGISTRIES.items()
            for n in set(reg.module_dict) - before[key] if (key, n) in declared}


def _requires_hint(borrowed: Mapping[Tuple[str, str], str]) -> str:
    if not borrowed:
        return ''
    owners = sorted(set(borrowed.values()))
    names = ', '.join(f"{reg} '{n}' ({owner})" for (reg, n), owner in sorted(borrowed.items()))
    return (f". Of these, {names} belong to {', '.join(map(repr, owners))}: it imports that "
            f"plugin's code, so list {', '.join(map(repr, owners))} in its requires (do not "
            'declare them again)')


def _register_failure(rec: PluginRecord, exc: Exception) -> str:
    where = f"plugin '{rec.name}' (module {rec.module})"
    message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    if isinstance(exc, KeyError) and ' is already registered in ' in message:
        comp = message.split(' is already registered in ')[0]
        others = sorted({owner for (_, name), owner in _STATE.owners.items() if name == comp})
        by = (f"plugin '{others[0]}'" if others else 'another module (not a plugin)')
        return (f"{where} has a duplicate component name: '{comp}' is already registered by "
                f"{by}, so '{rec.name}' is not loaded (KeyError: {message})")
    return f'{where} wsss_register() failed: {_describe(exc)}'


def _warn_undeclared(rec: PluginRecord, registry) -> None:
    for reg, names in rec.components.items():
        missing = [n for n in names if n not in registry.ALL_REGISTRIES[reg].module_dict]
        if missing:
            logger.warning("plugin '%s' declares %s %s but did not register them",
                           rec.name, reg, missing)


def _log_problems(candidates: List[_Candidate]) -> None:
    for c in candidates:
        if c.record.status in (BROKEN, INCOMPATIBLE, MISSING_DEP):
            logger.warning('%s: %s', c.record.status, c.record.reason)
