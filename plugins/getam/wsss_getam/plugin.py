"""The GETAM plugin's entry module: its manifest (plain data) and its register hook.

Light on purpose: nothing here imports torch; the component modules are imported only by
:func:`wsss_register`, when the core loads the plugin.
"""
from __future__ import annotations

from wsss_core.hookspecs import PLUGIN_API_VERSION, PluginManifest, hookimpl

from . import __version__

COMPONENTS = {
    'MODELS': ['SplitCrossEntropyLoss', 'SaliencyLoss', 'DenseEnergyLoss', 'GETAMNet',
               'GETAMViT'],
    'CAM_GENERATORS': ['GETAMCAM', 'AttentionRolloutCAM'],
    'LABEL_REFINERS': ['GETAMOnlineLabels'],
    'HOOKS': ['GETAMScheduleHook'],
    'STAGES': ['TrainGETAM'],
}

#: the modules whose import registers :data:`COMPONENTS`
COMPONENT_MODULES = (
    'wsss_getam.losses.split_ce', 'wsss_getam.losses.saliency_loss',
    'wsss_getam.losses.dense_energy', 'wsss_getam.models.getam_net',
    'wsss_getam.models.vit_backbone', 'wsss_getam.getam_map', 'wsss_getam.hooks',
    'wsss_getam.stages.train_getam', 'wsss_getam.rollout', 'wsss_getam.online_refiner',
)


@hookimpl
def wsss_manifest() -> PluginManifest:
    return PluginManifest(
        name='getam', version=__version__, api_version=PLUGIN_API_VERSION,
        components=COMPONENTS, config_package='wsss_getam.configs', requires=['core', 'deeplab'],
        description='GETAM: gradient-weighted transformer attention maps, end-to-end ViT '
                    'training with online pseudo labels')


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
