"""The GETAM plugin's entry module: its component table and the hooks made from it.

Light on purpose: nothing here imports torch; ``wsss_register`` imports the modules of the
table when the core loads the plugin (see :mod:`wsss_core.plugin_table`).
"""
from __future__ import annotations

from wsss_core.plugin_table import plugin_hooks

from . import __version__

#: registry -> {component name: the module (relative to ``wsss_getam``) that registers it}
COMPONENTS = {
    'MODELS': {
        'SplitCrossEntropyLoss': '.losses.split_ce', 'SaliencyLoss': '.losses.saliency_loss',
        'DenseEnergyLoss': '.losses.dense_energy', 'GETAMNet': '.models.getam_net',
        'GETAMViT': '.models.vit_backbone',
    },
    'CAM_GENERATORS': {'GETAMCAM': '.getam_map', 'AttentionRolloutCAM': '.rollout'},
    'LABEL_REFINERS': {'GETAMOnlineLabels': '.online_refiner'},
    'HOOKS': {'GETAMScheduleHook': '.hooks'},
    'STAGES': {'TrainGETAM': '.stages.train_getam'},
}

hookimpls = plugin_hooks(
    name='getam', version=__version__, api_version=1, package=__package__,
    components=COMPONENTS,
    requires=['core', 'deeplab'], configs='.configs', prepare_items='.prepare_items',
    description='GETAM: gradient-weighted transformer attention maps, end-to-end ViT '
                'training with online pseudo labels')
