"""The import boundary between plugins: a plugin uses another plugin only if it lists it in
its manifest's ``requires`` (the loader then loads that plugin first, and a selection such
as ``WSSS_PLUGINS=nsrom`` brings it along).  The core is always loaded, so any plugin may
use it; the core itself requires nothing, so it may use no plugin.

Every ``.py`` file of each shipped plugin package (the core included), and of a method
plugin's own ``tests/`` folder, is parsed, and each reference to another plugin is collected:

* ``import wsss_X...`` / ``from wsss_X... import ...`` (absolute imports, wherever they are:
  module level or inside a function);
* a string naming a module of another plugin, ``'wsss_X.mod'`` or ``'wsss_X.mod:function'``
  (``importlib.import_module``, a prepare item's ``install=``);
* a string that is another plugin's config spec, ``'X::path.py'`` (a config ``_base_``).

A reference to a plugin that is neither the plugin itself, the core, nor in its
``requires`` fails the test, naming the file and line.
"""
from __future__ import annotations

import ast
import dataclasses
import importlib.util
import re
import textwrap
from pathlib import Path
from typing import Iterator, List, Mapping, Sequence, Tuple

from wsss_core import plugin_loader

REPO = Path(__file__).resolve().parents[1]
SHIPPED = {'core', 'deeplab', 'edam', 'getam', 'moana', 'nsrom', 'oaa'}

_MODULE_STRING = re.compile(r'([A-Za-z_]\w*)(\.\w+)*(:\w+)?')
_CONFIG_SPEC = re.compile(r'(\w+)::\S')


@dataclasses.dataclass(frozen=True)
class PluginSource:
    """A plugin's name, import package, the folders of its files and what it requires."""
    name: str
    package: str
    folders: Tuple[Path, ...]
    requires: Tuple[str, ...]


def references(path: Path, packages: Mapping[str, str]) -> Iterator[Tuple[int, str, str]]:
    """``(line, plugin, what)`` for each reference in ``path`` to a plugin of ``packages``
    (import package -> plugin name); relative imports stay inside the plugin and are skipped."""
    names = set(packages.values())
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split('.')[0]
                if top in packages:
                    yield node.lineno, packages[top], f'imports {alias.name}'
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            top = node.module.split('.')[0]
            if top in packages:
                yield node.lineno, packages[top], f'imports from {node.module}'
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            module = _MODULE_STRING.fullmatch(node.value)
            spec = _CONFIG_SPEC.match(node.value)
            if module and module.group(1) in packages:
                yield node.lineno, packages[module.group(1)], f'names module {node.value!r}'
            elif spec and spec.group(1) in names:
                yield node.lineno, spec.group(1), f'names config {node.value!r}'


def boundary_violations(sources: Sequence[PluginSource], relative_to: Path) -> List[str]:
    """One ``file:line: ...`` line per reference of a plugin to a plugin it may not use."""
    packages = {s.package: s.name for s in sources}
    out = []
    for source in sources:
        allowed = {source.name, plugin_loader.CORE_NAME, *source.requires}
        for path in sorted(p for folder in source.folders for p in folder.rglob('*.py')):
            for line, plugin, what in sorted(references(path, packages)):
                if plugin not in allowed:
                    out.append(f'{path.relative_to(relative_to)}:{line}: plugin '
                               f"'{source.name}' {what}, but '{plugin}' is not in its "
                               f'requires {list(source.requires)}')
    return out


def source_of(record) -> PluginSource:
    """The package folder, and for a method plugin (``plugins/NAME/wsss_NAME``) its
    ``plugins/NAME/tests`` (the repository's own ``tests/`` exercise plugins together)."""
    package = record.module.split('.')[0]
    spec = importlib.util.find_spec(package)
    folder = Path(spec.submodule_search_locations[0]).resolve()
    tests = folder.parent / 'tests'
    folders = (folder, tests) if folder.parent != REPO and tests.is_dir() else (folder,)
    return PluginSource(record.name, package, folders, tuple(record.requires))


def shipped_sources() -> List[PluginSource]:
    """The discovered plugins whose package lives in this repository."""
    sources = [source_of(r) for r in plugin_loader.discovered_plugins(refresh=True)
               if r.manifest is not None]
    return [s for s in sources if s.folders[0].is_relative_to(REPO)]


def test_shipped_plugins_use_only_the_plugins_they_require():
    sources = shipped_sources()
    assert {s.name for s in sources} == SHIPPED
    assert next(s for s in sources if s.name == 'nsrom').requires == ('core', 'deeplab', 'oaa')
    violations = boundary_violations(sources, REPO)
    assert not violations, 'plugins using plugins they do not require:\n' + '\n'.join(violations)


def test_the_scan_sees_the_allowed_cross_plugin_imports():
    """nsrom uses oaa (it requires it): the scan finds those references, so the test above
    looks at real imports, not at nothing."""
    sources = {s.name: s for s in shipped_sources()}
    packages = {s.package: s.name for s in sources.values()}
    used = {plugin for path in sources['nsrom'].folders[0].rglob('*.py')
            for _, plugin, _ in references(path, packages)}
    assert sources['nsrom'].folders[1] == REPO / 'plugins' / 'nsrom' / 'tests'
    assert {'nsrom', 'oaa', 'core'} <= used


def write_package(root: Path, package: str, files: Mapping[str, str]) -> Path:
    folder = root / package
    folder.mkdir()
    (folder / '__init__.py').write_text('')
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text))
    return folder


def test_a_planted_import_of_a_plugin_not_required_fails_naming_file_and_line(tmp_path):
    alpha = write_package(tmp_path, 'wsssfix_alpha', {'stage.py': '''\
        """Alpha's stage."""
        import json
        from wsssfix_beta.models import Net
        from . import helpers


        def build():
            import wsssfix_gamma
            return importlib.import_module('wsssfix_beta.models')
        ''', 'configs.py': "_base_ = ['beta::base.py', 'alpha::own.py']\n"})
    beta = write_package(tmp_path, 'wsssfix_beta', {'models.py': '''\
        from wsssfix_alpha.stage import build
        import wsss_core.registry
        INSTALL = 'wsssfix_alpha.stage:build'
        '''})
    gamma = write_package(tmp_path, 'wsssfix_gamma', {'x.py': 'import wsssfix_beta\n'})
    (tmp_path / 'core').mkdir()   # the core's files are not what this test is about
    sources = [PluginSource('core', 'wsss_core', (tmp_path / 'core',), ()),
               PluginSource('alpha', 'wsssfix_alpha', (alpha,), ('core',)),
               PluginSource('beta', 'wsssfix_beta', (beta,), ('core', 'alpha')),
               PluginSource('gamma', 'wsssfix_gamma', (gamma,), ('core', 'beta'))]
    violations = boundary_violations(sources, tmp_path)
    assert violations == [
        "wsssfix_alpha/configs.py:1: plugin 'alpha' names config 'beta::base.py', but 'beta' "
        "is not in its requires ['core']",
        "wsssfix_alpha/stage.py:3: plugin 'alpha' imports from wsssfix_beta.models, but "
        "'beta' is not in its requires ['core']",
        "wsssfix_alpha/stage.py:8: plugin 'alpha' imports wsssfix_gamma, but 'gamma' is not "
        "in its requires ['core']",
        "wsssfix_alpha/stage.py:9: plugin 'alpha' names module 'wsssfix_beta.models', but "
        "'beta' is not in its requires ['core']",
    ]
