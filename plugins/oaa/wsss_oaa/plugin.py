"""The OAA plugin's entry module: its component table and the hooks made from it.

Light on purpose: nothing here imports torch; ``wsss_register`` imports the modules of the
table when the core loads the plugin (see :mod:`wsss_core.plugin_table`).
"""
from __future__ import annotations

from wsss_core.plugin_table import plugin_hooks

from . import __version__

#: registry -> {component name: the module (relative to ``wsss_oaa``) that registers it}
COMPONENTS = {
    'MODELS': {
        'VGG16OAA': '.models.vgg16_oaa', 'OAAClassifier': '.models.oaa_classifier',
        'IntegralAttentionModel': '.integral_attention',
    },
    'HOOKS': {'OAAAccumulationHook': '.accumulation.hook'},
    'TRANSFORMS': {'LoadAttentionTargets': '.stages.train_integral_attention'},
    'LABEL_REFINERS': {'OAAProxyLabels': '.proxy_labels'},
    'STAGES': {'ExportAttention': '.stages.export_attention',
               'TrainIntegralAttention': '.stages.train_integral_attention'},
}

hookimpls = plugin_hooks(
    name='oaa', version=__version__, api_version=1, package=__package__,
    components=COMPONENTS,
    requires=['core', 'deeplab'], configs='.configs', prepare_items='.prepare_items',
    description='OAA: online attention accumulation, integral attention model, proxy labels')
