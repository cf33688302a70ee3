"""The core as a built-in plugin: its manifest (plain data) and its register hook."""
from __future__ import annotations

from . import __version__
from .hookspecs import PLUGIN_API_VERSION, PluginManifest, hookimpl

COMPONENTS = {
    'MODELS': ['CAMClassifier', 'SmallResNet', 'TimmBackbone', 'ResNet38', 'TorchvisionResNet',
               'NormalizeImages', 'InterPixelRelationNet', 'TimmFeatureLevels'],
    'DATASETS': ['VOCLayoutDataset', 'SyntheticShapes', 'VOC2012', 'COCO2014', 'WSOLMetadata',
                 'SyntheticShapesWSOL', 'TaggedImageFolder'],
    'TRANSFORMS': ['RandomHorizontalFlip', 'RandomRescale', 'RandomPadCrop', 'PackInputs',
                   'Resize', 'RandomLongSide', 'ColorJitter', 'MarkValidPixels'],
    'METRICS': ['MultiLabelMAP', 'WSOLMetric'],
    'CAM_GENERATORS': ['CAM', 'GradCAM', 'GradCAMPlusPlus', 'LayerCAM', 'ScoreCAM',
                       'GradCAMPackage'],
    'LABEL_REFINERS': ['BackgroundThreshold', 'SaliencyFusion', 'DenseCRF', 'IRLabels',
                       'PAMRRefiner'],
    'SALIENCY_SOURCES': ['SaliencyFromDisk', 'SaliencyFromDataset', 'SpectralResidualSaliency',
                         'FineGrainedSaliency'],
    'HOOKS': ['NonFiniteLossGuard', 'RandomStateHook'],
    'STAGES': ['TrainClassifier', 'MakeCAMs', 'RefineLabels', 'EvaluateLabels', 'RenderSheet',
               'TrainIRN', 'RandomWalkLabels', 'EvaluateWSOL'],
}


@hookimpl
def wsss_manifest() -> PluginManifest:
    return PluginManifest(name='core', version=__version__, api_version=PLUGIN_API_VERSION,
                          components=COMPONENTS, config_package='wsss_core.configs',
                          description='wsss core: pipeline, baseline CAM, SyntheticShapes')


@hookimpl
def wsss_register() -> None:
    from .components import register_core_components
    register_core_components()


@hookimpl
def wsss_conformance_examples():
    from .conformance_examples import examples
    return examples()
