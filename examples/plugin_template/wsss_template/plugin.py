"""The plugin's entry module: one table of its components and the hooks made from it.

Plain data, no torch import: ``wsss-run --list-plugins`` reads the manifest without importing
any component; loading the plugin imports the module each component is listed with (the
import registers it) and checks that it did; the conformance suite (``wsss-run
--check-plugin template``) takes each component's example from ``conformance_examples.py``.
"""
from wsss_core.plugin_table import plugin_hooks

from . import __version__

#: registry -> {component name: the module that registers it}
COMPONENTS = {'LABEL_REFINERS': {'MarginLabels': '.margin_labels'},
              'STAGES': {'DropSmallRegions': '.drop_small_regions'}}

#: the plugin API (wsss_core.hookspecs.PLUGIN_API_VERSION) this plugin is written for: a
#: wsss-core with another one reports the plugin 'incompatible' instead of loading it
API_VERSION = 1

hookimpls = plugin_hooks(name='template', version=__version__, api_version=API_VERSION,
                         package=__package__,
                         components=COMPONENTS, requires=['core'], configs='.configs',
                         description='template plugin: margin-based pseudo labels without specks')
