"""The OAA plugin's entry module: its manifest (plain data) and its register hook.

Light on purpose: nothing here imports torch; the component modules are imported only by
:func:`wsss_register`, when the core loads the plugin.
"""
from __future__ import annotations

from wsss_core.hookspecs import PLUGIN_API_VERSION, PluginManifest, hookimpl

from . import __version__

COMPONENTS = {
    'MODELS': ['VGG16OAA', 'OAAClassifier', 'IntegralAttentionModel'],
    'HOOKS': ['OAAAccumulationHook'],
    'TRANSFORMS': ['LoadAttentionTargets'],
    'LABEL_REFINERS': ['OAAProxyLabels'],
    'STAGES': ['ExportAttention', 'TrainIntegralAttention'],
}

#: the modules whose import registers :data:`COMPONENTS`
COMPONENT_MODULES = (
    'wsss_oaa.models.vgg16_oaa', 'wsss_oaa.models.oaa_classifier',
    'wsss_oaa.accumulation.hook', 'wsss_oaa.integral_attention', 'wsss_oaa.proxy_labels',
    'wsss_oaa.stages.export_attention', 'wsss_oaa.stages.train_integral_attention',
)


@hookimpl
def wsss_manifest() -> PluginManifest:
    return PluginManifest(
        name='oaa', version=__version__, api_version=PLUGIN_API_VERSION,
        components=COMPONENTS, config_package='wsss_oaa.configs', requires=['core', 'deeplab'],
        description='OAA: online attention accumulation, integral attention model, proxy labels')


@hookimpl
def wsss_register() -> None:
    import importlib
    for module in COMPONENT_MODULES:
        importlib.import_module(module)


@hookimpl
def wsss_conformance_examples():
    from .conformance_examples import examples
    return examples()


@hookimpl
def wsss_prepare_items():
    from .prepare_items import items
    return items()
