"""The plugin passes the wsss conformance suite (what `wsss-run --check-plugin template` runs).

The same cases run as pytest items with `pytest --wsss-plugin template`.
"""
from wsss_core.testing.conformance import check_plugin


def test_the_plugin_passes_the_conformance_suite():
    report = check_plugin('template')
    assert report.ok, report.format()
    checked = {(r.case.subject, r.case.check) for r in report.results if r.status == 'passed'}
    assert ('MarginLabels', 'behaviour') in checked          # labels in 0..C or 255
    assert ('MarginLabels', 'determinism') in checked
    assert ('DropSmallRegions', 'build') in checked          # a stage: built from its example
    assert ('synthetic_margin.py', 'config') in checked      # the shipped config parses
