"""Every plugin of this repository (and the core) passes the conformance suite."""
from __future__ import annotations

import pytest

from wsss_core.testing.conformance import check_plugin

SHIPPED = ('core', 'deeplab', 'oaa', 'nsrom', 'edam', 'moana', 'getam')


@pytest.mark.parametrize('plugin', SHIPPED)
def test_shipped_plugin_passes_the_conformance_suite(plugin):
    report = check_plugin(plugin)
    assert report.ok, report.format()
    ran = {r.case.check for r in report.results if r.status == 'passed'}
    assert {'registered', 'build', 'config'} <= ran
    skipped = [r for r in report.results if r.status == 'skipped']
    assert len(skipped) <= 2, report.format(verbose=True)   # skips must stay the exception
