"""The core as the built-in plugin ``core``: its component table and the hooks made from it.

Light on purpose: nothing here imports torch; ``wsss_register`` imports the modules of the
table (see :mod:`wsss_core.plugin_table`).
"""
from __future__ import annotations

from . import __version__
from .plugin_table import plugin_hooks
from .hookspecs import PLUGIN_API_VERSION

#: registry -> {component name: the module (relative to ``wsss_core``) that registers it}
COMPONENTS = {
    'MODELS': {
        'CAMClassifier': '.models.cam_classifier', 'SmallResNet': '.models.small_resnet',
        'PretrainClassifier': '.models.pretrain_classifier',
        'TimmBackbone': '.models.timm_backbone', 'ResNet38': '.models.resnet38',
        'TorchvisionResNet': '.models.torchvision_resnet',
        'NormalizeImages': '.models.data_preprocessor',
        'InterPixelRelationNet': '.irn.model', 'TimmFeatureLevels': '.irn.model',
    },
    'DATASETS': {
        'VOCLayoutDataset': '.datasets.voc_layout',
        'SyntheticShapes': '.datasets.synthetic_dataset', 'VOC2012': '.datasets.voc12',
        'COCO2014': '.datasets.coco14', 'WSOLMetadata': '.wsol.metadata',
        'SyntheticShapesWSOL': '.wsol.synthetic',
        'TaggedImageFolder': '.datasets.tagged_folder',
        'ShapeCorpus': '.datasets.shape_corpus_dataset',
    },
    'TRANSFORMS': {
        **{name: '.datasets.transforms' for name in (
            'RandomHorizontalFlip', 'RandomRescale', 'RandomPadCrop', 'PackInputs', 'Resize',
            'RandomLongSide', 'ColorJitter', 'MarkValidPixels')},
        'RandomScaleChoice': '.datasets.seg_transforms', 'PadToSize': '.datasets.seg_transforms',
    },
    'METRICS': {
        'MultiLabelMAP': '.evaluation.classification', 'WSOLMetric': '.wsol.metric',
        'SingleLabelAccuracy': '.evaluation.classification',
    },
    'CAM_GENERATORS': {
        'CAM': '.cams.cam', 'GradCAM': '.cams.gradient', 'GradCAMPlusPlus': '.cams.gradient',
        'LayerCAM': '.cams.gradient', 'ScoreCAM': '.cams.score_cam',
        'GradCAMPackage': '.cams.pytorch_grad_cam_adapter',
    },
    'LABEL_REFINERS': {
        'BackgroundThreshold': '.refiners.background_threshold',
        'SaliencyFusion': '.refiners.saliency_fusion', 'DenseCRF': '.refiners.dense_crf',
        'IRLabels': '.irn.ir_labels', 'PAMRRefiner': '.refiners.pamr',
    },
    'SALIENCY_SOURCES': {
        'SaliencyFromDisk': '.saliency.from_disk', 'SaliencyFromDataset': '.saliency.from_dataset',
        'SpectralResidualSaliency': '.saliency.opencv', 'FineGrainedSaliency': '.saliency.opencv',
    },
    'OPTIM_WRAPPER_CONSTRUCTORS': {'DeepLabOptimWrapperConstructor': '.optim.param_groups'},
    'PARAM_SCHEDULERS': {'SteppedPolyLR': '.optim.poly_schedule'},
    'HOOKS': {
        'NonFiniteLossGuard': '.pipeline.loss_guard', 'RandomStateHook': '.pipeline.exact_resume',
        'TrainProgressBar': '.pipeline.progress_hook',
    },
    'STAGES': {
        'TrainClassifier': '.pipeline.train_classifier', 'MakeCAMs': '.pipeline.make_cams',
        'Pretrain': '.pipeline.pretrain',
        'RefineLabels': '.pipeline.refine_labels', 'EvaluateLabels': '.pipeline.evaluate_labels',
        'EvaluateClassifier': '.pipeline.evaluate_classifier',
        'RenderSheet': '.pipeline.render_sheet', 'TrainIRN': '.irn.train_irn',
        'RandomWalkLabels': '.irn.random_walk_labels',
        'EvaluateWSOL': '.wsol.evaluate_wsol',
        'TrainSegmentor': '.pipeline.train_segmentor',
        'TestSegmentor': '.pipeline.segmentor_inference',
    },
}

hookimpls = plugin_hooks(name='core', version=__version__, api_version=PLUGIN_API_VERSION,
                         package=__package__,
                         components=COMPONENTS, requires=[], configs='.configs',
                         description='wsss core: pipeline, baseline CAM, SyntheticShapes')
