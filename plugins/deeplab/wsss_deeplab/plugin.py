"""The DeepLab plugin's entry module: its manifest (plain data) and its register hook.

Light on purpose: nothing here imports torch; the component modules are imported only by
:func:`wsss_register`, when the core loads the plugin.
"""
from __future__ import annotations

from wsss_core.hookspecs import PLUGIN_API_VERSION, PluginManifest, hookimpl

from . import __version__

COMPONENTS = {
    'MODELS': ['DeepLabResNet', 'DeepLabV2', 'DeepLabV3Plus', 'CaffeNormalize'],
    'OPTIM_WRAPPER_CONSTRUCTORS': ['DeepLabOptimWrapperConstructor'],
    'PARAM_SCHEDULERS': ['SteppedPolyLR'],
    'TRANSFORMS': ['RandomScaleChoice', 'PadToSize'],
    'STAGES': ['TrainSegmentor', 'TestSegmentor'],
}

#: the modules whose import registers :data:`COMPONENTS`
COMPONENT_MODULES = (
    'wsss_deeplab.models.resnet_deeplab', 'wsss_deeplab.models.deeplab_v2',
    'wsss_deeplab.models.deeplab_v3plus', 'wsss_deeplab.models.caffe_normalize',
    'wsss_deeplab.optim.param_groups', 'wsss_deeplab.optim.poly_schedule',
    'wsss_deeplab.datasets.transforms', 'wsss_deeplab.stages.train_segmentor',
    'wsss_deeplab.stages.test_segmentor',
)


@hookimpl
def wsss_manifest() -> PluginManifest:
    return PluginManifest(
        name='deeplab', version=__version__, api_version=PLUGIN_API_VERSION,
        components=COMPONENTS, config_package='wsss_deeplab.configs', requires=['core'],
        description='DeepLab v2 (ResNet + ASPP + MSC) and v3+: train/test segmentor stages')


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
