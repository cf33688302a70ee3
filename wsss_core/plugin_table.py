"""A plugin declares each component once: one table, from which its hooks are made.

A plugin's entry module holds one table, registry -> {component name: module that registers
it}, and hands it to :func:`plugin_hooks`; the returned object, bound to the name
``hookimpls``, is what the loader registers::

    from wsss_core.plugin_table import plugin_hooks

    from . import __version__

    COMPONENTS = {
        'MODELS': {'OAAClassifier': '.models.oaa_classifier'},
        'HOOKS': {'OAAAccumulationHook': '.accumulation.hook'},
    }

    hookimpls = plugin_hooks(name='oaa', version=__version__, api_version=1,
                             package=__package__,
                             components=COMPONENTS, requires=['core', 'deeplab'],
                             configs='.configs')

A module path starting with ``.`` is relative to ``package`` (as in ``importlib``). From the
table come:

* the manifest's ``components`` (registry -> names, in table order), read without importing
  any component module, so the entry module stays light (no torch);
* ``wsss_register``: import each listed module once, in table order, and check right after
  each import that every name the table gives that module is in its registry; a name still
  missing is a :class:`ComponentTableError` naming the module, the registry and the name.
  So is a name these imports registered that the table does not declare (the table is the
  whole list: the loader's duplicate check and its "which plugin provides X" hint read it).
  The loader then marks the plugin broken and removes what it had registered;
* the conformance lookup: ``wsss_conformance_examples`` returns ``examples()`` of the
  plugin's examples module (``conformance``, default ``.conformance_examples``), one
  :class:`~wsss_core.testing.conformance.ComponentExample` per name of the table; the suite
  pairs each declared name (and its registry, hence its default kind) with the example of
  that name, and fails a name without one and an example of no declared name.

``prepare_items`` optionally names a module whose ``items()`` answers ``wsss_prepare_items``.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from typing import Dict, Mapping, Optional, Sequence, Tuple

from .hookspecs import PluginManifest, hookimpl

__all__ = ['ComponentTable', 'ComponentTableError', 'PluginHooks', 'plugin_hooks']


class ComponentTableError(LookupError):
    """Registering did not match a plugin's table: a module did not register a name the
    table gives it, or the imports registered a name the table does not declare."""


def _absolute(module: str, package: Optional[str]) -> str:
    """``module`` made absolute: a leading ``.`` is relative to ``package``."""
    if not module.startswith('.'):
        return module
    if not package:
        raise ValueError(f'relative module {module!r} in a component table needs package=')
    return importlib.util.resolve_name(module, package)


@dataclasses.dataclass(frozen=True)
class ComponentTable:
    """``(registry, name, module)`` rows, modules absolute, in declaration order."""

    rows: Tuple[Tuple[str, str, str], ...]

    @classmethod
    def from_mapping(cls, components: Mapping[str, Mapping[str, str]],
                     package: Optional[str] = None) -> 'ComponentTable':
        """Read registry -> {name: module}; refuses a name declared twice and a registry
        given as a list of names (the table says which module registers each name)."""
        rows, seen = [], {}
        for registry, names in components.items():
            if not isinstance(names, Mapping):
                raise TypeError(f'component table: {registry} must map each component name '
                                f'to the module that registers it, got {names!r}')
            for name, module in names.items():
                if not isinstance(name, str) or not isinstance(module, str) or not module:
                    raise TypeError(f'component table: {registry} {name!r}: expected a name '
                                    f'and a module path (str), got {module!r}')
                if name in seen:
                    raise ValueError(f'component table: {name!r} is declared twice '
                                     f'({seen[name]} and {registry})')
                seen[name] = registry
                rows.append((registry, name, _absolute(module, package)))
        return cls(tuple(rows))

    def declared(self) -> Dict[str, Tuple[str, ...]]:
        """Registry -> names: the manifest's ``components``."""
        out: Dict[str, Tuple[str, ...]] = {}
        for registry, name, _ in self.rows:
            out[registry] = out.get(registry, ()) + (name,)
        return out

    def modules(self) -> Tuple[str, ...]:
        """The modules to import, each once, in table order."""
        return tuple(dict.fromkeys(module for _, _, module in self.rows))

    def module_of(self, name: str) -> str:
        """The module that registers component ``name``."""
        for _, n, module in self.rows:
            if n == name:
                return module
        raise KeyError(f'{name!r} is not in the component table')

    def register(self, plugin: str = '?') -> None:
        """Import every module; after each, check its names are registered; at the end,
        check nothing undeclared was registered.  Idempotent (importing again is a no-op)."""
        from . import registry  # lazy: mmengine's registries
        for registry_name, *_ in self.rows:
            if registry_name not in registry.ALL_REGISTRIES:
                raise KeyError(f"plugin '{plugin}': unknown registry {registry_name!r} in its "
                               f"component table; known: {', '.join(registry.ALL_REGISTRIES)}")
        before = {key: set(reg.module_dict) for key, reg in registry.ALL_REGISTRIES.items()}
        for module in self.modules():
            just_before = {key: set(reg.module_dict)
                           for key, reg in registry.ALL_REGISTRIES.items()}
            importlib.import_module(module)
            missing = [(reg, name) for reg, name, mod in self.rows if mod == module
                       and name not in registry.ALL_REGISTRIES[reg].module_dict]
            if missing:
                listed = ', '.join(f"{reg} '{name}'" for reg, name in missing)
                new = sorted(f"{key} '{name}'" for key, reg in registry.ALL_REGISTRIES.items()
                             for name in set(reg.module_dict) - just_before[key])
                did = f'; it registered {", ".join(new)}' if new else '; it registered nothing'
                raise ComponentTableError(
                    f"plugin '{plugin}': module {module} was imported but did not register "
                    f"{listed} (its component table says it does{did})")
        declared = {(reg, name) for reg, name, _ in self.rows}
        extra = sorted((key, name) for key, reg in registry.ALL_REGISTRIES.items()
                       for name in set(reg.module_dict) - before[key]
                       if (key, name) not in declared)
        if extra:
            listed = ', '.join(f"{key} '{name}'" for key, name in extra)
            raise ComponentTableError(
                f"plugin '{plugin}': importing its modules registered {listed}, which its "
                f"component table does not declare (add each of its own, with the module "
                f"registering it)")


class PluginHooks:
    """A plugin's hook implementations, made from its component table (see the module
    docstring); the loader registers this object in place of the entry module."""

    def __init__(self, manifest: PluginManifest, table: ComponentTable,
                 conformance: Optional[str], prepare_items: Optional[str]):
        self.manifest = manifest
        self.table = table
        self.conformance = conformance
        self.prepare_items = prepare_items

    def __repr__(self) -> str:
        return f'<PluginHooks {self.manifest.name!r}>'

    @hookimpl
    def wsss_manifest(self) -> PluginManifest:
        return self.manifest

    @hookimpl
    def wsss_register(self) -> None:
        self.table.register(self.manifest.name)

    @hookimpl
    def wsss_conformance_examples(self):
        if self.conformance is None:
            return None
        return importlib.import_module(self.conformance).examples()

    @hookimpl
    def wsss_prepare_items(self):
        if self.prepare_items is None:
            return None
        return importlib.import_module(self.prepare_items).items()


def plugin_hooks(*, name: str, version: str, api_version: int, package: str,
                 components: Mapping[str, Mapping[str, str]], requires: Sequence[str],
                 configs: Optional[str] = None, description: str = '',
                 conformance: Optional[str] = '.conformance_examples',
                 prepare_items: Optional[str] = None) -> PluginHooks:
    """The hooks of plugin ``name`` from its component table (see the module docstring).

    Args:
        name: the plugin's (entry-point) name.
        version: its version string.
        api_version: the plugin API (:data:`~wsss_core.hookspecs.PLUGIN_API_VERSION`) the
            plugin was written for, as a literal (``1``), not the constant: a core with
            another API version then reports the plugin ``incompatible`` instead of loading
            it.
        package: the package relative module paths start from (pass ``__package__``).
        components: registry -> {component name: module that registers it}.
        requires: the plugins it builds on (``['core']`` at least, for a method plugin).
        configs: the package holding its ``.py`` configs (relative or absolute), if any.
        description: one line for ``wsss-run --list-plugins``.
        conformance: module whose ``examples()`` answers ``wsss_conformance_examples``;
            ``None`` for none.
        prepare_items: module whose ``items()`` answers ``wsss_prepare_items``, if any.
    """
    table = ComponentTable.from_mapping(components, package)
    manifest = PluginManifest(
        name=name, version=version, api_version=int(api_version),
        components=table.declared(), requires=requires, description=description,
        config_package=_absolute(configs, package) if configs else None)
    return PluginHooks(
        manifest, table,
        conformance=_absolute(conformance, package) if conformance else None,
        prepare_items=_absolute(prepare_items, package) if prepare_items else None)
