"""The MoANA plugin's entry module: its component table and the hooks made from it.

Light on purpose: nothing here imports torch; ``wsss_register`` imports the modules of the
table when the core loads the plugin (see :mod:`wsss_core.plugin_table`).
"""
from __future__ import annotations

from wsss_core.plugin_table import plugin_hooks

from . import __version__

#: registry -> {component name: the module (relative to ``wsss_moana``) that registers it}
COMPONENTS = {
    'MODELS': {
        'MoANABlock': '.models.moana_block', 'WithMoANA': '.models.moana_block',
        'MoANAClassifier': '.models.moana_classifier', 'VGG16CAM': '.models.cam_backbones',
        'InceptionV3CAM': '.models.cam_backbones',
    },
}

hookimpls = plugin_hooks(
    name='moana', version=__version__, api_version=1, package=__package__,
    components=COMPONENTS,
    requires=['core', 'deeplab'], configs='.configs',
    description='MoANA: axis-based nexus attention for WSOL and WSSS (IRN route)')
