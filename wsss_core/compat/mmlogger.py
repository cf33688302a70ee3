"""Patch: ``MMLogger.__init__`` wrapped so that every mmengine logger follows the console
rules of :mod:`wsss_core.console`.

Every ``MMLogger`` (one per Runner) gets its own console handler when it is made, inside
``Runner.__init__``, which logs the environment dump and the hook table right away; no
Runner argument sends them to a file only.  :func:`route_mmengine_logs` wraps
``MMLogger.__init__`` so that each new logger (and each one made already) is adopted by
:func:`wsss_core.console.adopt_mmengine_logger`: quiet console while a stage runs, records
relayed to the stage's log file.

Version gate: :data:`MMLOGGER_ROUTING_VERSIONS` through :func:`.versions.checked_on` (only
the console output depends on it: elsewhere a debug line and mmengine's console output).
Torch-free.
"""
from __future__ import annotations

from typing import Optional

from .versions import checked_on

__all__ = ['MMLOGGER_ROUTING_VERSIONS', 'route_mmengine_logs']

#: mmengine (major, minor) versions on which :func:`route_mmengine_logs` was checked
MMLOGGER_ROUTING_VERSIONS = ((0, 10),)


def route_mmengine_logs(version: Optional[str] = None) -> bool:
    """Adopt every MMLogger made from now on (and those made already) into the console
    rules of :mod:`wsss_core.console`; True when in place.  Idempotent; on an mmengine
    version outside :data:`MMLOGGER_ROUTING_VERSIONS` nothing is patched (False)."""
    from mmengine.logging import MMLogger

    from .. import console
    if getattr(MMLogger.__init__, '_wsss_routed', False):
        return True
    if not checked_on('route_mmengine_logs (MMLogger.__init__)', MMLOGGER_ROUTING_VERSIONS,
                      version):
        return False
    original = MMLogger.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        console.adopt_mmengine_logger(self)

    __init__._wsss_routed = True
    __init__.__wrapped__ = original
    MMLogger.__init__ = __init__
    for instance in list(MMLogger._instance_dict.values()):
        console.adopt_mmengine_logger(instance)
    return True
