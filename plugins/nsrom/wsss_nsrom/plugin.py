"""The NSROM plugin's entry module: its manifest (plain data) and its register hook.

Light on purpose: nothing here imports torch; the component modules are imported only by
:func:`wsss_register`, when the core loads the plugin.
"""
from __future__ import annotations

from wsss_core.hookspecs import PLUGIN_API_VERSION, PluginManifest, hookimpl

from . import __version__

COMPONENTS = {
    'MODELS': ['NSROMClassifier', 'OACAMModel'],
    'LABEL_REFINERS': ['PotentialObjectMining'],
    'STAGES': ['MaskNonSalientRegions'],
}

#: the modules whose import registers :data:`COMPONENTS`
COMPONENT_MODULES = (
    'wsss_nsrom.models.nsrom_models', 'wsss_nsrom.potential_object_mining',
    'wsss_nsrom.stages.mask_non_salient',
)


@hookimpl
def wsss_manifest() -> PluginManifest:
    return PluginManifest(
        name='nsrom', version=__version__, api_version=PLUGIN_API_VERSION,
        components=COMPONENTS, config_package='wsss_nsrom.configs',
        requires=['core', 'deeplab', 'oaa'],
        description='NSROM: GloRe head, potential object mining, non-salient region masking')


@hookimpl
def wsss_register() -> None:
    import importlib
    for module in COMPONENT_MODULES:
        importlib.import_module(module)


@hookimpl
def wsss_conformance_examples():
    from .conformance_examples import examples
    return examples()
