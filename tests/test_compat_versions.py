"""The version gate of the mmengine patches in wsss_core.compat."""
from __future__ import annotations

import logging

from wsss_core.compat.versions import checked_on, mmengine_version_tuple


def test_version_tuple_reads_major_and_minor():
    assert mmengine_version_tuple('0.10.7') == (0, 10)
    assert mmengine_version_tuple('1.2.0rc1') == (1, 2)


def test_checked_on_refuses_an_unknown_version_with_a_debug_line(caplog):
    with caplog.at_level(logging.DEBUG, logger='wsss_core'):
        assert checked_on('some_patch', ((0, 10),), '0.10.7')
        assert not caplog.records
        assert not checked_on('some_patch', ((0, 10),), '0.11.0')
    assert "some_patch: mmengine 0.11 is not among the versions it was checked on (0.10)" \
        in caplog.text
