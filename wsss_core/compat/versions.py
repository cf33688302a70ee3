"""The version gate of every mmengine patch in :mod:`wsss_core.compat`.

A patch names the mmengine ``(major, minor)`` versions it was checked on.  On any other
version:

* a patch that only changes how things look (:func:`checked_on`) logs a debug line and
  returns False, and the patch leaves mmengine's own behaviour in place;
* a patch that results depend on (:func:`require_checked`) raises
  :class:`UncheckedMMEngineVersion`, which names the patch, the versions and what to do:
  without the patch a run would go on and compute something else.

Torch-free (loading a config uses it).
"""
from __future__ import annotations

import logging
from typing import Iterable, Optional, Tuple

__all__ = ['mmengine_version_tuple', 'checked_on', 'require_checked',
           'UncheckedMMEngineVersion']


class UncheckedMMEngineVersion(RuntimeError):
    """A patch that results depend on meets an mmengine version it was not checked on."""


def mmengine_version_tuple(version: Optional[str] = None) -> Tuple[int, int]:
    """``'0.10.7'`` -> ``(0, 10)`` (default: the installed mmengine)."""
    import mmengine
    parts = (version or mmengine.__version__).split('.')
    return tuple(int(''.join(c for c in p if c.isdigit()) or 0) for p in parts[:2])


def _dotted(versions: Iterable[Tuple[int, ...]]) -> str:
    return ', '.join('.'.join(map(str, v)) for v in versions)


def checked_on(patch: str, versions: Iterable[Tuple[int, int]],
               version: Optional[str] = None) -> bool:
    """Whether the installed mmengine (or ``version``) is one ``patch`` was checked on; a
    debug line names the patch and the version when it is not."""
    versions = tuple(versions)
    found = mmengine_version_tuple(version)
    if found in versions:
        return True
    logging.getLogger('wsss_core').debug(
        '%s: mmengine %s is not among the versions it was checked on (%s); mmengine\'s own '
        'behaviour is kept', patch, '.'.join(map(str, found)), _dotted(versions))
    return False


def require_checked(patch: str, versions: Iterable[Tuple[int, int]], needed_for: str,
                    constant: str, version: Optional[str] = None) -> None:
    """Raise :class:`UncheckedMMEngineVersion` unless the installed mmengine (or ``version``)
    is one ``patch`` was checked on.

    ``needed_for`` says what goes wrong without the patch; ``constant`` names the tuple of
    checked versions to extend once the patch's test passes on the new version."""
    versions = tuple(versions)
    found = mmengine_version_tuple(version)
    if found in versions:
        return
    raise UncheckedMMEngineVersion(
        f'{patch} was checked on mmengine {_dotted(versions)}, the installed mmengine is '
        f'{".".join(map(str, found))}; it is needed for {needed_for}. Install mmengine '
        f'{_dotted(versions)}, or check the patch on this version (tests/test_compat_patches.py) '
        f'and add the version to {constant}.')
