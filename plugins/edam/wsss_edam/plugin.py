"""The EDAM plugin's entry module: its manifest (plain data) and its register hook.

Light on purpose: nothing here imports torch; the component modules are imported only by
:func:`wsss_register`, when the core loads the plugin.
"""
from __future__ import annotations

from wsss_core.hookspecs import PLUGIN_API_VERSION, PluginManifest, hookimpl

from . import __version__

COMPONENTS = {
    'MODELS': ['EDAMClassifier'],
    'CAM_GENERATORS': ['DAMasks'],
    'DATASETS': ['ImagePairs'],
    'DATA_SAMPLERS': ['PairEpochSampler'],
    'LABEL_REFINERS': ['EDAMSaliencyFusion'],
    'STAGES': ['TrainPairClassifier'],
    'OPTIM_WRAPPER_CONSTRUCTORS': ['EDAMOptimWrapperConstructor'],
}

#: the modules whose import registers :data:`COMPONENTS`
COMPONENT_MODULES = (
    'wsss_edam.models.edam_classifier', 'wsss_edam.models.da_masks',
    'wsss_edam.datasets.image_pairs', 'wsss_edam.saliency_fusion',
    'wsss_edam.stages.train_pair_classifier', 'wsss_edam.optim.edam_optim',
)


@hookimpl
def wsss_manifest() -> PluginManifest:
    return PluginManifest(
        name='edam', version=__version__, api_version=PLUGIN_API_VERSION,
        components=COMPONENTS, config_package='wsss_edam.configs', requires=['core', 'deeplab'],
        description='EDAM: discriminative activation, collaborative multi-attention, '
                    'saliency fusion')


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
