"""The EDAM plugin's entry module: its component table and the hooks made from it.

Light on purpose: nothing here imports torch; ``wsss_register`` imports the modules of the
table when the core loads the plugin (see :mod:`wsss_core.plugin_table`).
"""
from __future__ import annotations

from wsss_core.plugin_table import plugin_hooks

from . import __version__

#: registry -> {component name: the module (relative to ``wsss_edam``) that registers it}
COMPONENTS = {
    'MODELS': {'EDAMClassifier': '.models.edam_classifier'},
    'CAM_GENERATORS': {'DAMasks': '.models.da_masks'},
    'DATASETS': {'ImagePairs': '.datasets.image_pairs'},
    'DATA_SAMPLERS': {'PairEpochSampler': '.datasets.image_pairs'},
    'LABEL_REFINERS': {'EDAMSaliencyFusion': '.saliency_fusion'},
    'STAGES': {'TrainPairClassifier': '.stages.train_pair_classifier'},
    'OPTIM_WRAPPER_CONSTRUCTORS': {'EDAMOptimWrapperConstructor': '.optim.edam_optim'},
}

hookimpls = plugin_hooks(
    name='edam', version=__version__, api_version=1, package=__package__,
    components=COMPONENTS,
    requires=['core', 'deeplab'], configs='.configs', prepare_items='.prepare_items',
    description='EDAM: discriminative activation, collaborative multi-attention, '
                'saliency fusion')
