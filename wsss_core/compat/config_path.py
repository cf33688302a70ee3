"""Patch: ``Config._get_cfg_path`` wrapped so that ``_base_ = ['NAME::x.py']`` resolves the
configs of wsss plugins.

mmengine's own ``pkg::`` prefix only knows OpenMMLab packages (``mmdet::`` and the like,
through ``MODULE2PACKAGE``).  :func:`install_config_path_shim` replaces the static method
once per process by a wrapper that first asks a resolver (``wsss_core.config`` passes its
own): a path string for a base the resolver owns, None for one it leaves to mmengine's
original.  No mmengine ``_scope_`` is returned for a wsss base: every component lives in the
``wsss_core`` scope.

Version gate: :data:`CONFIG_PATH_VERSIONS` through :func:`.versions.require_checked` (configs
that include a plugin's fragment do not load without it, so an unchecked version is an
error, not a silent fallback).  Torch-free: loading a config imports no torch.
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

from .versions import require_checked

__all__ = ['CONFIG_PATH_VERSIONS', 'install_config_path_shim', 'is_installed']

#: mmengine (major, minor) versions on which :func:`install_config_path_shim` was checked
CONFIG_PATH_VERSIONS = ((0, 10),)


def is_installed() -> bool:
    """Whether ``Config._get_cfg_path`` is the wsss wrapper."""
    from mmengine.config import Config
    return getattr(Config.__dict__['_get_cfg_path'].__func__, '_wsss_shim', False)


def install_config_path_shim(resolve: Callable[[str], Optional[str]],
                             version: Optional[str] = None) -> bool:
    """Wrap ``Config._get_cfg_path`` so that ``resolve(cfg_path)`` answers first (idempotent:
    True when this call installed it, False when it was in place).

    ``resolve`` returns the file a ``_base_`` entry names, or None to fall through to
    mmengine's original (``(path, scope)`` as mmengine returns it).
    """
    from mmengine.config import Config
    if is_installed():
        return False
    require_checked('the config path shim (Config._get_cfg_path)', CONFIG_PATH_VERSIONS,
                    "configs whose _base_ names a plugin's file ('NAME::x.py')",
                    'wsss_core.compat.config_path.CONFIG_PATH_VERSIONS', version)
    original = Config.__dict__['_get_cfg_path'].__func__

    def _get_cfg_path(cfg_path: str, filename: str) -> Tuple[str, Optional[str]]:
        resolved = resolve(cfg_path)
        if resolved is not None:
            return resolved, None
        return original(cfg_path, filename)

    _get_cfg_path._wsss_shim = True
    _get_cfg_path.__wrapped__ = original
    _get_cfg_path.__doc__ = f'wsss shim around mmengine\'s:\n{original.__doc__}'
    Config._get_cfg_path = staticmethod(_get_cfg_path)
    return True
