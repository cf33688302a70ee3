"""The MoANA plugin's entry module: its manifest (plain data) and its register hook.

Light on purpose: nothing here imports torch; the component modules are imported only by
:func:`wsss_register`, when the core loads the plugin.
"""
from __future__ import annotations

from wsss_core.hookspecs import PLUGIN_API_VERSION, PluginManifest, hookimpl

from . import __version__

COMPONENTS = {
    'MODELS': ['MoANABlock', 'WithMoANA', 'MoANAClassifier', 'VGG16CAM', 'InceptionV3CAM'],
}

#: the modules whose import registers :data:`COMPONENTS`
COMPONENT_MODULES = (
    'wsss_moana.models.moana_block', 'wsss_moana.models.moana_classifier',
    'wsss_moana.models.cam_backbones',
)


@hookimpl
def wsss_manifest() -> PluginManifest:
    return PluginManifest(
        name='moana', version=__version__, api_version=PLUGIN_API_VERSION,
        components=COMPONENTS, config_package='wsss_moana.configs', requires=['core', 'deeplab'],
        description='MoANA: axis-based nexus attention for WSOL and WSSS (IRN route)')


@hookimpl
def wsss_register() -> None:
    import importlib
    for module in COMPONENT_MODULES:
        importlib.import_module(module)


@hookimpl
def wsss_conformance_examples():
    from .conformance_examples import examples
    return examples()
