"""Plugin conformance suite: check any installed plugin's components the way ours are checked.

    from wsss_core.testing.conformance import check_plugin
    report = check_plugin('oaa')
    assert report.ok, report.format()

or ``wsss-run --check-plugin oaa``, or ``pytest --wsss-plugin oaa``.  A plugin declares how
each of its components is built and exercised with the ``wsss_conformance_examples()`` hook
returning :class:`ComponentExample` records (see ``examples/plugin_template``).
"""
from .checks import ConformanceFailure, seed_everything
from .examples import KINDS, ComponentExample
from .suite import (Case, CheckResult, ConformanceReport, PluginNotCheckable, check_plugin,
                    plugin_cases, run_case)

__all__ = ['KINDS', 'Case', 'CheckResult', 'ComponentExample', 'ConformanceFailure',
           'ConformanceReport', 'PluginNotCheckable', 'check_plugin', 'plugin_cases',
           'run_case', 'seed_everything']
