"""The plugin's entry module: plain data and three hooks, no torch import at module level.

``wsss-run --list-plugins`` reads :func:`wsss_manifest` without importing the components;
``wsss_register`` imports them (which registers them); the conformance suite
(``wsss-run --check-plugin template``) asks ``wsss_conformance_examples`` how to exercise them.
"""
from wsss_core.hookspecs import PLUGIN_API_VERSION, PluginManifest, hookimpl

from . import __version__

COMPONENTS = {'LABEL_REFINERS': ['MarginLabels']}


@hookimpl
def wsss_manifest() -> PluginManifest:
    return PluginManifest(name='template', version=__version__, api_version=PLUGIN_API_VERSION,
                          components=COMPONENTS, config_package='wsss_template.configs',
                          requires=['core'],
                          description='template plugin: margin-based pseudo labels')


@hookimpl
def wsss_register() -> None:
    from . import margin_labels  # noqa: F401  (registers MarginLabels)


@hookimpl
def wsss_conformance_examples():
    from wsss_core.testing.conformance import ComponentExample
    return [ComponentExample('MarginLabels', dict(threshold=0.25, margin=0.1))]
