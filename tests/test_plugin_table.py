"""A plugin declared by one component table (wsss_core.plugin_table): the manifest, the
register hook and its check, the conformance and prepare hooks, all made from the table.

Throwaway table-form plugins are written into ``tmp_path`` with unique names (the registries
are process-global); a fake core replaces the real one where loading is involved.
"""
from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from wsss_core import plugin_loader
from wsss_core.plugin_table import ComponentTable, ComponentTableError, plugin_hooks

sys.path.insert(0, str(Path(__file__).parent / 'fixtures' / 'plugins'))
from wsss_plugin_factory import make_plugin, unique  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
#: entry module -> plugin name
SHIPPED_ENTRY_MODULES = {'wsss_core.core_plugin': 'core', 'wsss_deeplab.plugin': 'deeplab',
                         'wsss_edam.plugin': 'edam', 'wsss_getam.plugin': 'getam',
                         'wsss_moana.plugin': 'moana', 'wsss_nsrom.plugin': 'nsrom',
                         'wsss_oaa.plugin': 'oaa'}


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(plugin_loader.ENV_VAR, raising=False)
    fake_core = make_plugin(tmp_path, 'core', package=unique('wsssfix_core'))
    monkeypatch.setattr(plugin_loader, 'CORE_MODULE', fake_core.module)
    return tmp_path


def write_table_plugin(root: Path, table: dict, registers: dict, entry_extra: str = '',
                       api_version: int = 1, name: str = '') -> tuple:
    """Package ``wsssfix_table<N>``: ``plugin.py`` holds ``table`` (registry -> {name:
    module}) and ``hookimpls``; ``registers`` maps each module (relative, e.g. '.parts') to
    the (registry, class name) pairs its import registers. Returns (plugin name, package)."""
    name = name or unique('table')
    package = f'wsssfix_{name}'
    pkg = root / package
    pkg.mkdir()
    (pkg / '__init__.py').write_text('')
    for module, pairs in registers.items():
        lines = ['from wsss_core import registry', '']
        for reg, cls in pairs:
            lines += [f'@registry.{reg}.register_module()', f'class {cls}:', '    pass', '']
        (pkg / f'{module.lstrip(".")}.py').write_text('\n'.join(lines))
    (pkg / 'examples.py').write_text(textwrap.dedent('''\
        from wsss_core.testing.conformance import ComponentExample
        def examples():
            return [ComponentExample(name) for name in ('A', 'B')]
        '''))
    (pkg / 'plugin.py').write_text(textwrap.dedent(f'''\
        from wsss_core.plugin_table import plugin_hooks
        COMPONENTS = {table!r}
        hookimpls = plugin_hooks(name={name!r}, version='1.2.3', api_version={api_version},
                                 package=__package__,
                                 components=COMPONENTS, requires=['core'],
                                 conformance='.examples')
        ''') + entry_extra)
    return name, package


def entry_point(name: str, package: str):
    return importlib.metadata.EntryPoint(name=name, value=f'{package}.plugin',
                                         group='wsss.plugins')


# ----------------------------------------------------------------------------- the table
def test_table_gives_the_manifest_components_in_order_and_absolute_modules():
    table = ComponentTable.from_mapping(
        {'MODELS': {'Net': '.models.net', 'Head': 'other_pkg.head'},
         'STAGES': {'Train': '.stages'}}, package='my_plugin')
    assert table.declared() == {'MODELS': ('Net', 'Head'), 'STAGES': ('Train',)}
    assert table.module_of('Net') == 'my_plugin.models.net'
    assert table.module_of('Head') == 'other_pkg.head'
    assert table.modules() == ('my_plugin.models.net', 'other_pkg.head', 'my_plugin.stages')


def test_table_refuses_a_name_twice_a_plain_list_and_a_relative_path_without_package():
    with pytest.raises(ValueError, match="'Net' is declared twice"):
        ComponentTable.from_mapping({'MODELS': {'Net': '.a'}, 'HOOKS': {'Net': '.b'}}, 'p')
    with pytest.raises(TypeError, match='MODELS must map each component name'):
        ComponentTable.from_mapping({'MODELS': ['Net']}, 'p')
    with pytest.raises(ValueError, match='needs package='):
        ComponentTable.from_mapping({'MODELS': {'Net': '.a'}})


def test_hooks_make_the_manifest_without_importing_the_modules():
    hooks = plugin_hooks(name='x', version='0.3', api_version=7, package='nowhere_pkg',
                         requires=['core'],
                         components={'MODELS': {'Net': '.models'}}, configs='.configs',
                         prepare_items='.items', description='d')
    manifest = hooks.wsss_manifest()
    assert (manifest.name, manifest.version, manifest.requires) == ('x', '0.3', ('core',))
    assert manifest.api_version == 7      # what the plugin says, not the installed core's
    assert manifest.components == {'MODELS': ('Net',)}
    assert manifest.config_package == 'nowhere_pkg.configs' and manifest.description == 'd'
    assert 'nowhere_pkg' not in sys.modules  # nothing imported: the package does not exist
    assert (hooks.conformance, hooks.prepare_items) == ('nowhere_pkg.conformance_examples',
                                                        'nowhere_pkg.items')


# ----------------------------------------------------------------------------- loading
def test_table_plugin_loads_registers_and_answers_the_conformance_hook(root):
    from wsss_core import registry
    a, b = unique('TabA'), unique('TabB')
    name, package = write_table_plugin(
        root, {'MODELS': {a: '.parts'}, 'HOOKS': {b: '.hooks'}},
        {'.parts': [('MODELS', a)], '.hooks': [('HOOKS', b)]})
    listed = plugin_loader.list_plugins(entry_points=[entry_point(name, package)])
    assert listed[1].status == 'not-loaded' and a not in registry.MODELS.module_dict
    loaded = plugin_loader.load_plugins(entry_points=[entry_point(name, package)])
    rec = loaded[name]
    assert (rec.status, rec.version) == ('ok', '1.2.3'), rec.reason
    assert rec.components == {'MODELS': (a,), 'HOOKS': (b,)}
    assert registry.MODELS.get(a).__module__ == f'{package}.parts'
    assert registry.HOOKS.get(b).__module__ == f'{package}.hooks'
    hooks = loaded.manager.get_plugin(name)
    assert [ex.name for ex in hooks.wsss_conformance_examples()] == ['A', 'B']
    assert hooks.wsss_prepare_items() is None


def test_a_table_plugin_written_for_another_api_is_incompatible_and_not_imported(root):
    from wsss_core import registry
    from wsss_core.hookspecs import PLUGIN_API_VERSION
    a = unique('Future')
    name, package = write_table_plugin(root, {'MODELS': {a: '.parts'}},
                                       {'.parts': [('MODELS', a)]},
                                       api_version=PLUGIN_API_VERSION + 1)
    rec = plugin_loader.load_plugins(entry_points=[entry_point(name, package)])[name]
    assert rec.status == 'incompatible', rec.reason
    assert f'written for plugin API version {PLUGIN_API_VERSION + 1}' in rec.reason
    assert f'install a release of the plugin written for API {PLUGIN_API_VERSION}' in rec.reason
    assert a not in registry.MODELS.module_dict and f'{package}.parts' not in sys.modules


def test_a_declared_name_the_module_does_not_register_breaks_the_plugin_naming_it(root):
    from wsss_core import registry
    a, missing = unique('HasA'), unique('Missing')
    name, package = write_table_plugin(
        root, {'MODELS': {a: '.parts', missing: '.parts'}}, {'.parts': [('MODELS', a)]})
    rec = plugin_loader.load_plugins(entry_points=[entry_point(name, package)])[name]
    assert rec.status == 'broken'
    assert 'ComponentTableError' in rec.reason
    assert (f'module {package}.parts was imported but did not register MODELS '
            f"'{missing}' (its component table says it does; it registered MODELS '{a}')") \
        in rec.reason                          # what it did register shows a misspelt name
    assert a not in registry.MODELS.module_dict  # what it did register is removed again


def test_check_runs_after_each_import_so_a_swapped_table_names_the_first_module(root):
    """The table gives X to .first and Y to .second, the code does the opposite: checked
    only at the end, both names would be there; checked after each import, .first is named."""
    x, y = unique('SwapX'), unique('SwapY')
    name, package = write_table_plugin(
        root, {'MODELS': {x: '.first', y: '.second'}},
        {'.first': [('MODELS', y)], '.second': [('MODELS', x)]})
    rec = plugin_loader.load_plugins(entry_points=[entry_point(name, package)])[name]
    assert rec.status == 'broken'
    assert f"module {package}.first was imported but did not register MODELS '{x}'" \
        in rec.reason


def test_a_registered_name_the_table_does_not_declare_breaks_the_plugin(root):
    from wsss_core import registry
    a, extra = unique('Declared'), unique('Undeclared')
    name, package = write_table_plugin(root, {'MODELS': {a: '.parts'}},
                                       {'.parts': [('MODELS', a), ('HOOKS', extra)]})
    rec = plugin_loader.load_plugins(entry_points=[entry_point(name, package)])[name]
    assert rec.status == 'broken'
    assert f"importing its modules registered HOOKS '{extra}', which its component table " \
           f"does not declare" in rec.reason
    assert extra not in registry.HOOKS.module_dict and a not in registry.MODELS.module_dict


def test_register_outside_the_loader_raises_naming_the_module():
    table = ComponentTable.from_mapping({'MODELS': {'Json': 'json'}})
    with pytest.raises(ComponentTableError, match=r"plugin 'p': module json was imported "
                                                     r"but did not register MODELS 'Json'"):
        table.register('p')


def test_entry_module_with_both_a_table_and_own_hooks_is_broken(root):
    extra = textwrap.dedent('''
        from wsss_core.hookspecs import hookimpl

        @hookimpl
        def wsss_register():
            pass
        ''')
    a = unique('Both')
    name, package = write_table_plugin(root, {'MODELS': {a: '.parts'}},
                                       {'.parts': [('MODELS', a)]}, entry_extra=extra)
    rec = plugin_loader.list_plugins(entry_points=[entry_point(name, package)])[1]
    assert rec.status == 'broken'
    assert "defines both hookimpls (its component table) and module-level hooks " \
           "['wsss_register']" in rec.reason


def test_an_entry_point_at_the_package_instead_of_its_entry_module_is_named(root):
    a = unique('Pkg')
    name, package = write_table_plugin(root, {'MODELS': {a: '.parts'}},
                                       {'.parts': [('MODELS', a)]})
    wrong = importlib.metadata.EntryPoint(name=name, value=package, group='wsss.plugins')
    rec = plugin_loader.list_plugins(entry_points=[wrong])[1]
    assert rec.status == 'broken'
    assert (f'the entry point loads {package}, which has neither `hookimpls = '
            'plugin_hooks(...)` nor an @hookimpl wsss_manifest') in rec.reason
    assert 'point the entry point at the plugin\'s entry module' in rec.reason


def test_a_module_plugin_whose_manifest_hook_has_another_name_loads(root):
    name = unique('spec')
    (root / f'wsssfix_{name}.py').write_text(textwrap.dedent(f'''\
        from wsss_core.hookspecs import PluginManifest, hookimpl

        @hookimpl(specname='wsss_manifest')
        def manifest():
            return PluginManifest(name={name!r}, version='0.1', api_version=1,
                                  components={{}}, requires=['core'])
        '''))
    ep = importlib.metadata.EntryPoint(name=name, value=f'wsssfix_{name}', group='wsss.plugins')
    rec = plugin_loader.list_plugins(entry_points=[ep])[1]
    assert rec.status == 'not-loaded', rec.reason     # healthy: pluggy's specname is honoured


def test_broken_conformance_examples_make_the_plugin_not_checkable_naming_it(root):
    from wsss_core.testing.conformance import PluginNotCheckable, check_plugin
    a = unique('Ex')
    name, package = write_table_plugin(root, {'MODELS': {a: '.parts'}},
                                       {'.parts': [('MODELS', a)]})
    (root / package / 'examples.py').write_text(textwrap.dedent('''\
        from wsss_core.testing.conformance import ComponentExample
        def examples():
            return [ComponentExample('A'), ComponentExample('A')]
        '''))
    plugin_set = plugin_loader.load_plugins(entry_points=[entry_point(name, package)])
    assert plugin_set[name].status == 'ok', plugin_set[name].reason
    with pytest.raises(PluginNotCheckable) as err:
        check_plugin(name, plugin_set)
    assert (f"plugin '{name}': its conformance examples could not be read (examples() of "
            f"{package}.examples): ValueError: two conformance examples for 'A'") in str(err.value)


def test_importing_another_plugin_without_requires_says_so_and_leaves_that_plugin_whole(root):
    from wsss_core import registry
    theirs, mine = unique('Theirs'), unique('Mine')
    suffix = unique('')
    base, base_pkg = write_table_plugin(root, {'MODELS': {theirs: '.parts'}},
                                        {'.parts': [('MODELS', theirs)]}, name=f'zbase{suffix}')
    user, user_pkg = write_table_plugin(root, {'MODELS': {mine: '.mine'}},
                                        {'.mine': [('MODELS', mine)]}, name=f'auser{suffix}')
    mine_py = root / user_pkg / 'mine.py'    # imports the other plugin's module: no requires
    mine_py.write_text(f'import {base_pkg}.parts  # noqa: F401\n' + mine_py.read_text())
    loaded = plugin_loader.load_plugins(entry_points=[entry_point(user, user_pkg),
                                                      entry_point(base, base_pkg)])
    rec = loaded[user]
    assert rec.status == 'broken'
    assert (f"MODELS '{theirs}' ({base}) belong to '{base}': it imports that plugin's code, so "
            f"list '{base}' in its requires") in rec.reason
    assert loaded[base].status == 'ok', loaded[base].reason      # not broken by the other
    assert registry.MODELS.get(theirs).__module__ == f'{base_pkg}.parts'
    assert mine not in registry.MODELS.module_dict                # the broken one's rolled back


# ----------------------------------------------------------------------------- shipped
def test_shipped_entry_modules_are_tables_and_import_no_torch():
    code = textwrap.dedent(f'''
        import importlib, json, sys
        out = {{}}
        for module in {list(SHIPPED_ENTRY_MODULES)!r}:
            entry = importlib.import_module(module)
            manifest = entry.hookimpls.wsss_manifest()
            declared = {{reg: list(names) for reg, names in entry.COMPONENTS.items()}}
            out[module] = [manifest.name, {{k: list(v) for k, v in
                                           manifest.components.items()}} == declared]
        out['torch'] = 'torch' in sys.modules
        print(json.dumps(out))
        ''')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out.pop('torch') is False
    assert out == {module: [name, True] for module, name in SHIPPED_ENTRY_MODULES.items()}
