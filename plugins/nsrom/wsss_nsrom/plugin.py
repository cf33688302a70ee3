"""The NSROM plugin's entry module: its component table and the hooks made from it.

Light on purpose: nothing here imports torch; ``wsss_register`` imports the modules of the
table when the core loads the plugin (see :mod:`wsss_core.plugin_table`).
"""
from __future__ import annotations

from wsss_core.plugin_table import plugin_hooks

from . import __version__

#: registry -> {component name: the module (relative to ``wsss_nsrom``) that registers it}
COMPONENTS = {
    'MODELS': {'NSROMClassifier': '.models.nsrom_models', 'OACAMModel': '.models.nsrom_models'},
    'LABEL_REFINERS': {'PotentialObjectMining': '.potential_object_mining'},
    'STAGES': {'MaskNonSalientRegions': '.stages.mask_non_salient'},
}

hookimpls = plugin_hooks(
    name='nsrom', version=__version__, api_version=1, package=__package__,
    components=COMPONENTS,
    requires=['core', 'deeplab', 'oaa'], configs='.configs',
    description='NSROM: GloRe head, potential object mining, non-salient region masking')
