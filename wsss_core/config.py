"""Config resolution (``'oaa::voc12_vgg16.py'``), loading and the run record in the work dir.

A config spec is either a plain path or ``NAME::relative/path.py``: a file inside the
``config_package`` of the plugin ``NAME`` (``core::`` is the core's ``wsss_core.configs``).
Only the configs package is imported to find its directory, never the plugin's components.

``_base_`` entries may use the same ``NAME::`` form.  mmengine's own ``pkg::`` prefix only
knows OpenMMLab packages, so :func:`install_config_shim` has mmengine ask
:func:`resolve_config_path` first (the patch itself, with its version gate, is
:mod:`wsss_core.compat.config_path`): a scope that is a wsss plugin resolves here (with no
mmengine ``_scope_``: all components live in the ``wsss_core`` scope); any other scope falls
through to mmengine's original.  Relative ``_base_`` paths are untouched.
"""
from __future__ import annotations

import datetime
import importlib
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable, List, Optional, Tuple

from mmengine.config import Config

from . import plugin_loader
from .compat.config_path import install_config_path_shim
from .config_stages import StageOrderError, by_name_options, check_stage_types, stage_configs

__all__ = ['ConfigError', 'resolve_config_path', 'load_config', 'merge_options',
           'install_config_shim',
           'dump_run_info', 'environment_info', 'shipped_configs', 'config_summary',
           'format_config_table']

CORE_CONFIG_PACKAGE = 'wsss_core.configs'


class ConfigError(ValueError):
    """A config spec that cannot be resolved; the message says why and what exists."""


# ----------------------------------------------------------------------------- resolution
def resolve_config_path(spec: str) -> Path:
    """Resolve ``'NAME::rel/path.py'`` or a plain path to an existing config file.

    Raises:
        ConfigError: unknown plugin (lists the installed ones), a plugin without configs,
            or a missing file (lists the ``.py`` configs the plugin ships).
    """
    scope, sep, rel = str(spec).partition('::')
    if not sep:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ConfigError(f'config file not found: {spec}{_shipped_hint(path.name)}')
        return path
    if not rel:
        raise ConfigError(f"config spec '{spec}' names no file after '{scope}::'")
    config_dir = _plugin_config_dir(scope)
    path = config_dir / rel
    if not path.is_file():
        available = ', '.join(list_configs(config_dir)) or '(none)'
        raise ConfigError(f"config '{rel}' not found in plugin '{scope}' ({config_dir}); "
                          f'available configs: {available}')
    return path


def list_configs(config_dir: Path) -> List[str]:
    """The ``.py`` configs under ``config_dir`` as relative POSIX paths (no ``__init__``).

    Files inside a folder whose name starts with ``_`` (``_recipes/``) are fragments that
    configs include through ``_base_``, not configs to run: they are left out (they still
    resolve as ``NAME::_recipes/x.py``)."""
    config_dir = Path(config_dir)
    rels = (p.relative_to(config_dir) for p in config_dir.rglob('*.py'))
    return sorted(rel.as_posix() for rel in rels if rel.name != '__init__.py'
                  and not any(part.startswith('_') for part in rel.parts[:-1]))


def config_summary(path) -> str:
    """The first line of a config file when it is a comment (what the config runs, on which
    data, which files it needs), without the ``#``; ``'(no description)'`` otherwise."""
    try:
        with open(path, encoding='utf-8') as fh:
            first = fh.readline().strip()
    except OSError as exc:
        return f'(unreadable: {exc.strerror})'
    return first.lstrip('#').strip() if first.startswith('#') else '(no description)'


def shipped_configs(plugin: Optional[str] = None) -> List[Tuple[str, str]]:
    """``('NAME::rel/path.py', first comment line)`` for every config the discovered plugins
    ship (the core first, then by discovery order), or only ``plugin``'s.  Plugins without a
    configs package are left out of the full list; naming one raises :class:`ConfigError`.
    Only the configs packages are imported (no torch)."""
    if plugin is not None:
        names = [plugin]
    else:
        names = [r.name for r in plugin_loader.discovered_plugins()]
        names.sort(key=lambda n: n != plugin_loader.CORE_NAME)
    rows = []
    for name in names:
        try:
            config_dir = _plugin_config_dir(name)
        except ConfigError:
            if plugin is not None:
                raise
            continue
        rows += [(f'{name}::{rel}', config_summary(config_dir / rel))
                 for rel in list_configs(config_dir)]
    return rows


def format_config_table(rows: List[Tuple[str, str]]) -> str:
    """One line per config: the spec padded to the longest, two spaces, its summary."""
    if not rows:
        return '(no configs shipped)'
    width = max(len(spec) for spec, _ in rows)
    return '\n'.join(f'{spec:<{width}}  {summary}' for spec, summary in rows)


def _find_plugin(name: str) -> Optional[plugin_loader.PluginRecord]:
    """The discovered plugin ``name``; discovery runs again once on a miss."""
    for refresh in (False, True):
        found = [r for r in plugin_loader.discovered_plugins(refresh=refresh) if r.name == name]
        if found:
            return found[0]
    return None


def _shipped_hint(file_name: str) -> str:
    """``'; did you mean oaa::synthetic.py? ...'``: the shipped configs whose file name is
    closest to ``file_name`` (a plain path that does not exist is often a shipped config's
    name without its ``NAME::``), and where the list is."""
    import difflib
    try:
        specs = [spec for spec, _ in shipped_configs()]
    except Exception:  # noqa: BLE001 - a hint must not hide the error it decorates
        specs = []
    by_file: dict = {}
    for spec in specs:
        by_file.setdefault(spec.split('::', 1)[1].rsplit('/', 1)[-1], []).append(spec)
    close = [spec for name in difflib.get_close_matches(file_name, list(by_file), n=2,
                                                         cutoff=0.75)
             for spec in by_file[name]][:4]
    hint = f'; did you mean {" or ".join(close)}?' if close else ''
    return f'{hint} (wsss-run --list-configs lists the shipped configs)'


def _installed_names() -> str:
    return ', '.join(r.name for r in plugin_loader.discovered_plugins())


def _plugin_config_dir(name: str) -> Path:
    record = _find_plugin(name)
    if record is None:
        raise ConfigError(f"unknown plugin '{name}' in config spec '{name}::...'; "
                          f'installed plugins: {_installed_names()}')
    package = record.manifest.config_package if record.manifest else None
    if name == plugin_loader.CORE_NAME and package is None:
        package = CORE_CONFIG_PACKAGE  # the core ships its configs even if its manifest fails
    if package is None:
        why = f' ({record.status}: {record.reason})' if record.manifest is None else ''
        raise ConfigError(f"plugin '{name}' ships no configs (its manifest has no "
                          f'config_package){why}')
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        raise ConfigError(f"the configs package '{package}' of plugin '{name}' cannot be "
                          f'imported: {type(exc).__name__}: {exc}') from exc
    return Path(next(iter(module.__path__)))


# ----------------------------------------------------------------------------- loading
def install_config_shim() -> None:
    """Make ``_base_ = ['NAME::x.py']`` resolve wsss plugin configs (idempotent; the patch of
    ``Config._get_cfg_path`` is :func:`wsss_core.compat.config_path.install_config_path_shim`)."""
    install_config_path_shim(plugin_base_path)


def plugin_base_path(cfg_path: str) -> Optional[str]:
    """The file a ``_base_`` entry ``'NAME::rel.py'`` names when ``NAME`` is a wsss scope
    (:func:`resolve_config_path`), else None (mmengine resolves it)."""
    scope, sep, _ = cfg_path.partition('::')
    if sep and _is_wsss_scope(scope):
        return str(resolve_config_path(cfg_path))
    return None


def _is_wsss_scope(scope: str) -> bool:
    """A wsss plugin name, or an unknown scope that mmengine could not resolve either."""
    if scope == plugin_loader.CORE_NAME or _find_plugin(scope) is not None:
        return True
    from mmengine.config.utils import MODULE2PACKAGE
    return scope not in MODULE2PACKAGE  # let resolve_config_path raise the clear error


def load_config(spec: str, cfg_options: Optional[dict] = None) -> Config:
    """Load the config ``spec`` (see :func:`resolve_config_path`) with its ``_base_`` chain.

    ``cfg_options`` holds dotted keys (``{'model.backbone.depth': 50}``, as parsed by
    mmengine's ``DictAction`` from ``--cfg-options``) merged over the loaded config; a stage
    is addressed by name (``stages.classify.max_epochs``) in either form of ``stages``
    (:func:`~wsss_core.config_stages.by_name_options`).

    The loaded ``cfg.stages`` is the resolved run order: the list of stage dicts, each with
    its ``name`` (:func:`~wsss_core.config_stages.stage_configs`: a dict config's removals
    dropped, its ``after`` / ``before`` placed).
    """
    path = resolve_config_path(spec)
    install_config_shim()
    cfg = Config.fromfile(str(path))
    if cfg_options:
        merge_options(cfg, cfg_options)
    try:
        if cfg.get('stages') is not None:
            cfg.stages = stage_configs(cfg.stages)
            check_stage_types(cfg.stages)
    except StageOrderError as exc:
        raise ConfigError(f'{spec}: {exc}') from exc
    return cfg


def merge_options(cfg: Config, options: dict) -> Config:
    """Merge dotted ``options`` over ``cfg`` in place (mmengine's ``merge_from_dict``), a
    stage addressed by name or position (``stages.classify.max_epochs``, ``stages.0.x``)
    whichever form ``cfg.stages`` has (a loaded config's is the list).  Returns ``cfg``.

    Raises:
        ConfigError: a ``stages.<name>`` that no stage of a list ``stages`` has.
    """
    try:
        cfg.merge_from_dict(by_name_options(options, cfg.get('stages')))
    except StageOrderError as exc:
        raise ConfigError(str(exc)) from exc
    return cfg


# ----------------------------------------------------------------------------- run record
def is_work_dir(path) -> bool:
    """A folder a run wrote: its ``config.py`` (:func:`dump_run_info`), or a stage's
    ``manifest.json`` or ``state.json`` (a Pipeline run from Python writes no config.py)."""
    path = Path(path)
    return (path / 'config.py').is_file() or any(path.glob('*/manifest.json')) \
        or any(path.glob('*/state.json'))


def not_a_work_dir(path) -> str:
    """Why ``path`` is not a work dir, naming the work dirs inside it when it holds some (the
    user gave ``work_dirs`` for ``work_dirs/x``)."""
    path = Path(path)
    inside = sorted(str(p) for p in path.iterdir() if p.is_dir() and is_work_dir(p))
    what = f'not a work dir (no config.py, no stage manifest or state): {path}'
    if not inside:
        return what
    more = f', ... ({len(inside)} in all)' if len(inside) > 5 else ''
    return f'{what} (the work dirs in it: {", ".join(inside[:5])}{more})'


def dump_run_info(cfg: Config, work_dir,
                  plugin_records: Iterable[plugin_loader.PluginRecord]) -> None:
    """Write ``config.py`` (the merged config), ``plugins.json`` and ``env.json`` into
    ``work_dir``, each atomically."""
    from .io import atomic_write, write_json

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(work_dir / 'config.py', 'w') as fh:
        fh.write(cfg.pretty_text)
    write_json(work_dir / 'plugins.json', [
        {'name': r.name, 'version': r.version, 'status': r.status,
         'distribution': r.distribution, 'reason': r.reason or None}
        for r in plugin_records])
    write_json(work_dir / 'env.json', environment_info())


_VERSIONS = {  # reported name -> distributions that provide it, first found wins
    'torch': ('torch',), 'torchvision': ('torchvision',), 'timm': ('timm',),
    'mmengine': ('mmengine', 'mmengine-lite'), 'numpy': ('numpy',), 'pillow': ('pillow',),
    'opencv': ('opencv-contrib-python-headless', 'opencv-python-headless',
               'opencv-contrib-python', 'opencv-python'),
    'pluggy': ('pluggy',), 'wsss-core': ('wsss-core',),
}


def environment_info() -> dict:
    """Python, platform, library versions, CUDA, CPUs, host, command line, time, git commit."""
    return {
        'python': sys.version.split()[0],
        'executable': sys.executable,
        'platform': platform.platform(),
        'versions': {name: _version(dists) for name, dists in _VERSIONS.items()},
        'cuda_available': _cuda_available(),
        'cpus': os.cpu_count(),
        'cpus_usable': len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else None,
        'hostname': socket.gethostname(),
        'command_line': list(sys.argv),
        'cwd': os.getcwd(),
        'time': datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(),
        'git_commit': _git_commit(),
    }


def _version(dists) -> Optional[str]:
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _cuda_available() -> Optional[bool]:
    try:
        import torch
    except Exception:  # noqa: BLE001 - report, never fail the run over it
        return None
    return bool(torch.cuda.is_available())


def _git_commit(cwd: Any = None) -> Optional[str]:
    try:
        out = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=cwd, capture_output=True,
                             text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None
