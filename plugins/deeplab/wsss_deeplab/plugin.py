"""The DeepLab plugin's entry module: its component table and the hooks made from it.

Light on purpose: nothing here imports torch; ``wsss_register`` imports the modules of the
table when the core loads the plugin (see :mod:`wsss_core.plugin_table`).
"""
from __future__ import annotations

from wsss_core.plugin_table import plugin_hooks

from . import __version__

#: registry -> {component name: the module (relative to ``wsss_deeplab``) that registers it}
COMPONENTS = {
    'MODELS': {
        'DeepLabResNet': '.models.resnet_deeplab', 'DeepLabV2': '.models.deeplab_v2',
        'DeepLabV3Plus': '.models.deeplab_v3plus', 'CaffeNormalize': '.models.caffe_normalize',
    },
}

hookimpls = plugin_hooks(
    name='deeplab', version=__version__, api_version=1, package=__package__,
    components=COMPONENTS,
    requires=['core'], configs='.configs', prepare_items='.prepare_items',
    description='DeepLab v2 (ResNet + ASPP + MSC) and v3+: networks, weights, recipes')
