"""The plugin contract: pluggy hook specifications and the manifest record.

A plugin is a distribution ``wsss-<name>`` whose entry point in the group ``wsss.plugins``
names a *light* module (no torch import at module level), e.g. ``wsss_oaa/plugin.py``.  The
module declares each component once, in one table (registry -> {name: module that registers
it}), and makes its hooks from it with :func:`wsss_core.plugin_table.plugin_hooks`::

    from wsss_core.plugin_table import plugin_hooks

    COMPONENTS = {'MODELS': {'OAAClassifier': '.models.oaa_classifier'},
                  'HOOKS': {'OAAAccumulationHook': '.accumulation.hook'}}

    hookimpls = plugin_hooks(name='oaa', version='0.1.0', api_version=1,
                             package=__package__,
                             components=COMPONENTS, requires=['core', 'deeplab'],
                             configs='.configs')

The loader registers the module's ``hookimpls`` (a module without one is registered itself,
its hooks written as module-level ``@hookimpl`` functions).  The core reads every manifest to
list plugins (cheap, no torch) and calls ``wsss_register`` only for the plugins it loads.
"""
from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Mapping, Optional, Sequence

import pluggy

#: Version of this contract; a plugin whose manifest declares another one is 'incompatible'.
PLUGIN_API_VERSION = 1

PROJECT_NAME = 'wsss'
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@dataclasses.dataclass(frozen=True)
class PluginManifest:
    """What a plugin declares about itself, read without importing its components.

    Attributes:
        name: the plugin's name (the entry-point name, e.g. ``'oaa'``; ``'core'`` for the core).
        version: the plugin's version string.
        api_version: the plugin API version it was written for (:data:`PLUGIN_API_VERSION`).
        components: registry name (a key of ``wsss_core.registry.ALL_REGISTRIES``, e.g.
            ``'MODELS'``) -> names of the components the plugin registers there.
        config_package: importable package whose directory holds the plugin's ``.py`` configs
            (``'oaa::x.py'`` resolves inside it); ``None`` when the plugin ships no configs.
        requires: names of the plugins this one builds on (loaded before it).
        description: one line for humans.
    """

    name: str
    version: str
    api_version: int
    components: Mapping[str, Sequence[str]] = dataclasses.field(default_factory=dict)
    config_package: Optional[str] = None
    requires: Sequence[str] = ()
    description: str = ''

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f'PluginManifest.name must be a non-empty string, got {self.name!r}')
        if not isinstance(self.api_version, int):
            raise TypeError(f'PluginManifest.api_version must be an int, '
                            f'got {self.api_version!r}')
        if isinstance(self.requires, str):
            raise TypeError(f'PluginManifest.requires must be a sequence of plugin names, '
                            f'got the string {self.requires!r}')
        components = {str(reg): tuple(names) for reg, names in dict(self.components).items()}
        for reg, names in components.items():
            if any(not isinstance(n, str) for n in names):
                raise TypeError(f'PluginManifest.components[{reg!r}] must list names (str)')
        object.__setattr__(self, 'components', MappingProxyType(components))
        object.__setattr__(self, 'requires', tuple(self.requires))

    def component_names(self) -> tuple:
        """All declared component names, in declaration order."""
        return tuple(n for names in self.components.values() for n in names)


@hookspec(firstresult=True)
def wsss_manifest() -> PluginManifest:
    """Return the plugin's :class:`PluginManifest`. Must not import torch or components."""


@hookspec
def wsss_register() -> None:
    """Import the component modules so that they register into the core registries.

    Called at most once per process, after the plugins listed in ``requires`` registered.
    """


@hookspec
def wsss_conformance_examples():
    """Optional: return one :class:`wsss_core.testing.conformance.ComponentExample` per
    declared component, saying how the conformance suite builds and exercises it (tiny
    default config, kind of checks, input factory, or a ``skip`` reason).

    Called only by the conformance suite, after ``wsss_register``; may import torch.
    """


@hookspec
def wsss_prepare_items():
    """Optional: return the :class:`wsss_core.prepare.items.PrepareItem` objects this plugin
    adds to ``wsss-prepare`` (weight files, saliency maps, data sets its configs name as
    ``'item:NAME'``).

    Called on the entry module without registering components: must not import torch.
    """
