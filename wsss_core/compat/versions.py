"""The version gate of every mmengine patch in :mod:`wsss_core.compat`.

A patch names the mmengine ``(major, minor)`` versions it was checked on; on any other
version :func:`checked_on` logs a debug line and returns False, and the patch leaves
mmengine's own behaviour in place.
"""
from __future__ import annotations

import logging
from typing import Iterable, Optional, Tuple

__all__ = ['mmengine_version_tuple', 'checked_on']


def mmengine_version_tuple(version: Optional[str] = None) -> Tuple[int, int]:
    """``'0.10.7'`` -> ``(0, 10)`` (default: the installed mmengine)."""
    import mmengine
    parts = (version or mmengine.__version__).split('.')
    return tuple(int(''.join(c for c in p if c.isdigit()) or 0) for p in parts[:2])


def checked_on(patch: str, versions: Iterable[Tuple[int, int]],
               version: Optional[str] = None) -> bool:
    """Whether the installed mmengine (or ``version``) is one ``patch`` was checked on; a
    debug line names the patch and the version when it is not."""
    found = mmengine_version_tuple(version)
    if found in tuple(versions):
        return True
    logging.getLogger('wsss_core').debug(
        '%s: mmengine %s is not among the versions it was checked on (%s); mmengine\'s own '
        'behaviour is kept', patch, '.'.join(map(str, found)),
        ', '.join('.'.join(map(str, v)) for v in versions))
    return False
