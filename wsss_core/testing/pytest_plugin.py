"""pytest plugin (entry point ``pytest11: wsss``): ``pytest --wsss-plugin NAME`` adds one test
item per conformance case of the installed wsss plugin ``NAME`` (repeatable).

    pytest --wsss-plugin oaa                      # your tests + oaa's conformance items
    pytest --wsss-plugin oaa -k wsss-conformance  # the conformance items only

Items are named ``wsss-conformance[PLUGIN::SUBJECT::CHECK]``; a failed check reports what
the component produced against what its kind requires (see
:mod:`wsss_core.testing.conformance`).  Without the option this plugin adds nothing.
"""
from __future__ import annotations

import pytest

ITEM_PREFIX = 'wsss-conformance'


def pytest_addoption(parser) -> None:
    group = parser.getgroup('wsss', 'wsss plugin conformance')
    group.addoption('--wsss-plugin', action='append', default=[], metavar='NAME',
                    help='run the wsss conformance suite on the installed plugin NAME '
                         '(repeatable)')


@pytest.hookimpl(tryfirst=True)   # before -k / -m deselection, so those filter our items too
def pytest_collection_modifyitems(session, config, items) -> None:
    names = config.getoption('wsss_plugin', default=None) or []
    if not names:
        return
    from .conformance import PluginNotCheckable, plugin_cases
    for name in names:
        try:
            cases = plugin_cases(name)
        except PluginNotCheckable as exc:
            items.append(ConformanceItem.from_parent(session, name=f'{ITEM_PREFIX}[{name}]',
                                                     case=None, error=str(exc)))
            continue
        items.extend(ConformanceItem.from_parent(session, name=f'{ITEM_PREFIX}[{case.id}]',
                                                 case=case) for case in cases)


class ConformanceItem(pytest.Item):
    """One conformance case as a pytest item."""

    def __init__(self, *, case, error: str = '', **kwargs):
        super().__init__(**kwargs)
        self.case, self.error = case, error

    def runtest(self) -> None:
        from .conformance import ConformanceFailure, run_case
        if self.case is None:
            raise ConformanceFailure(self.error)
        result = run_case(self.case)
        if result.status == 'skipped':
            pytest.skip(result.detail)
        if result.status == 'failed':
            raise ConformanceFailure(result.detail)

    def repr_failure(self, excinfo, style=None):
        from .conformance import ConformanceFailure
        if isinstance(excinfo.value, ConformanceFailure):
            return f'{self.name}: {excinfo.value}'
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, self.name
