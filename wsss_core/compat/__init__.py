"""Every mmengine patch of wsss, and the work-arounds beside them, in one package.

A *patch* replaces or wraps an mmengine function, method or attribute; each one sits behind
a version gate (:mod:`.versions`): it applies on the mmengine ``(major, minor)`` versions it
was checked on, and elsewhere either logs a debug line and leaves mmengine's behaviour
(:func:`~.versions.checked_on`, for a patch only the console output depends on) or refuses
with :class:`~.versions.UncheckedMMEngineVersion` (:func:`~.versions.require_checked`, for a
patch results depend on).  ``docs/model_protocols.md`` has the table.

Patches:

* :mod:`.config_path`: ``Config._get_cfg_path`` resolves ``_base_ = ['NAME::x.py']`` in
  wsss plugins (required);
* :mod:`.mmlogger`: ``MMLogger.__init__`` routes every mmengine logger into the console
  rules (:func:`route_mmengine_logs`; console output only);
* :mod:`.optim_wrapper`: ``OptimWrapper.update_params`` gated per instance (the non-finite
  loss guard holds a bad update back; required);
* :mod:`.train_loop`: an iteration-based loop's ``dataloader_iterator`` wrapped per instance
  (the exact resume restores the random generators after mmengine's fast-forward; required).

Work-arounds that replace nothing of mmengine (no gate): :mod:`.checkpoints`
(:func:`allow_mmengine_checkpoints` for ``torch.load(weights_only=True)``) and
:mod:`.distributed` (:func:`init_distributed`, :class:`DeviceAwareDDP`,
:func:`model_wrapper_cfg` for distributed runs on CPU).

This module imports no torch: the names below are loaded from their submodules on first use
(``from wsss_core import compat; compat.init_distributed(...)`` imports torch only then), so
loading a config, which needs :mod:`.config_path`, stays torch-free.
"""
from __future__ import annotations

import importlib

#: exported name -> the submodule that defines it
_EXPORTS = {
    'mmengine_version_tuple': 'versions',
    'checked_on': 'versions',
    'require_checked': 'versions',
    'UncheckedMMEngineVersion': 'versions',
    'install_config_path_shim': 'config_path',
    'CONFIG_PATH_VERSIONS': 'config_path',
    'route_mmengine_logs': 'mmlogger',
    'MMLOGGER_ROUTING_VERSIONS': 'mmlogger',
    'gate_update_params': 'optim_wrapper',
    'install_update_gate': 'optim_wrapper',
    'UPDATE_GATE_VERSIONS': 'optim_wrapper',
    'restore_before_batch': 'train_loop',
    'FAST_FORWARD_VERSIONS': 'train_loop',
    'mmengine_checkpoint_globals': 'checkpoints',
    'allow_mmengine_checkpoints': 'checkpoints',
    'init_distributed': 'distributed',
    'shutdown_distributed': 'distributed',
    'DeviceAwareDDP': 'distributed',
    'model_wrapper_cfg': 'distributed',
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(f'.{module}', __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
