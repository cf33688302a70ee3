"""The GETAM plugin's entry module: its manifest (plain data) and its register hook.

Light on purpose: nothing here imports torch; the component modules are imported only by
:func:`wsss_register`, when the core loads the plugin.
"""
from __future__ import annotations

from wsss_core.hookspecs import PLUGIN_API_VERSION, PluginManifest, hookimpl

from . import __version__

COMPONENTS = {
    'MODELS': ['SplitCrossEntropyLoss', 'SaliencyLoss', 'DenseEnergyLoss'],
}

#: the modules whose import registers :data:`COMPONENTS`
COMPONENT_MODULES = (
    'wsss_getam.losses.split_ce', 'wsss_getam.losses.saliency_loss',
    'wsss_getam.losses.dense_energy',
)


@hookimpl
def wsss_manifest() -> PluginManifest:
    return PluginManifest(
        name='getam', version=__version__, api_version=PLUGIN_API_VERSION,
        components=COMPONENTS, config_package='wsss_getam.configs', requires=['core'],
        description='GETAM: online pseudo labels, split CE, saliency and gated dense-CRF losses')


@hookimpl
def wsss_register() -> None:
    import importlib
    for module in COMPONENT_MODULES:
        importlib.import_module(module)
