"""Plugin discovery, isolation, duplicates, restriction and loading (wsss_core.plugin_loader).

Registries are process-global, so every test writes its own throwaway plugins (unique
plugin, package and component names) into ``tmp_path``; a fake core replaces the real
``wsss_core.core_plugin`` where loading is involved, so these tests do not depend on (or import
torch through) the core's components.
"""
from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from wsss_core import plugin_loader
from wsss_core.hookspecs import PLUGIN_API_VERSION, PluginManifest

sys.path.insert(0, str(Path(__file__).parent / 'fixtures' / 'plugins'))
from wsss_plugin_factory import make_plugin, unique, write_distribution  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A directory on sys.path to write throwaway plugin packages into."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(plugin_loader.ENV_VAR, raising=False)
    return tmp_path


@pytest.fixture
def core(root, monkeypatch):
    """A fake built-in core plugin (no components) in place of wsss_core.core_plugin."""
    fake = make_plugin(root, 'core', package=unique('wsssfix_core'))
    monkeypatch.setattr(plugin_loader, 'CORE_MODULE', fake.module)
    return fake


def eps(*fakes):
    return [f.entry_point() for f in fakes]


def by_name(records):
    return {r.name: r for r in records}


# ----------------------------------------------------------------------------- manifest
def test_manifest_normalises_and_validates():
    m = PluginManifest(name='x', version='1', api_version=PLUGIN_API_VERSION,
                       components={'MODELS': ['A', 'B'], 'HOOKS': ['C']}, requires=['core'])
    assert m.components['MODELS'] == ('A', 'B')
    assert m.requires == ('core',)
    assert m.component_names() == ('A', 'B', 'C')
    with pytest.raises(TypeError, match='requires'):
        PluginManifest(name='x', version='1', api_version=1, requires='core')
    with pytest.raises(ValueError, match='name'):
        PluginManifest(name='', version='1', api_version=1)
    with pytest.raises(TypeError, match='api_version'):
        PluginManifest(name='x', version='1', api_version='1')


# ----------------------------------------------------------------------------- good path
def test_good_plugin_loads_and_its_component_builds(core, root):
    from wsss_core import registry
    cam = unique('GoodCam')
    good = make_plugin(root, unique('good'), components={'CAM_GENERATORS': [cam]})

    listed = plugin_loader.list_plugins(entry_points=eps(good))
    assert [r.name for r in listed] == ['core', good.name]
    assert by_name(listed)[good.name].status == 'not-loaded'
    assert cam not in registry.CAM_GENERATORS.module_dict  # listing registers nothing

    loaded = plugin_loader.load_plugins(entry_points=eps(good))
    rec = loaded[good.name]
    assert (rec.status, rec.reason, rec.version, rec.module) == ('ok', '', '0.1.0', good.module)
    assert rec.manifest.components == {'CAM_GENERATORS': (cam,)}
    assert loaded.loaded == ('core', good.name)
    obj = registry.build(dict(type=cam, scale=3), registry.CAM_GENERATORS)
    assert type(obj).__name__ == cam and obj.scale == 3
    assert loaded.manager.is_registered(loaded.manager.get_plugin(good.name))


def test_loading_twice_does_not_register_twice(core, root):
    from wsss_core import registry
    cam = unique('TwiceCam')
    good = make_plugin(root, unique('twice'), components={'CAM_GENERATORS': [cam]})
    first = plugin_loader.load_plugins(entry_points=eps(good))
    cls = registry.CAM_GENERATORS.get(cam)
    second = plugin_loader.load_plugins(entry_points=eps(good))
    assert first[good.name].status == second[good.name].status == 'ok'
    assert registry.CAM_GENERATORS.get(cam) is cls
    assert by_name(plugin_loader.list_plugins(entry_points=eps(good)))[good.name].status == 'ok'


def test_core_is_first_and_cannot_be_disabled(core, root):
    a = make_plugin(root, unique('aaa'))
    records = plugin_loader.list_plugins(entry_points=eps(a), enabled=[a.name])
    assert records[0].name == 'core' and records[0].status == 'not-loaded'
    records = plugin_loader.list_plugins(entry_points=eps(a), enabled=['core'])
    assert records[0].status == 'not-loaded'
    assert by_name(records)[a.name].status == 'disabled'


def test_real_core_manifest_is_listed_first_without_registering():
    records = plugin_loader.list_plugins(entry_points=[])
    assert [r.name for r in records] == ['core']
    core = records[0]
    assert core.module == 'wsss_core.core_plugin' and core.distribution == 'wsss-core'
    assert core.status in ('not-loaded', 'ok'), core.reason
    assert core.manifest.config_package == 'wsss_core.configs'


# ----------------------------------------------------------------------------- isolation
@pytest.mark.parametrize('flag, where, cause', [
    ('import_error', 'failed to import', "ModuleNotFoundError: No module named "
                                         "'wsssfix_no_such_module'"),
    ('manifest_error', 'wsss_manifest() failed', 'RuntimeError: manifest exploded'),
    ('register_error', 'wsss_register() failed', 'RuntimeError: register exploded'),
])
def test_a_broken_plugin_is_isolated(core, root, caplog, flag, where, cause):
    from wsss_core import registry
    cam, bad_cam = unique('IsoCam'), unique('BadCam')
    good = make_plugin(root, unique('good'), components={'CAM_GENERATORS': [cam]})
    bad = make_plugin(root, unique('bad'), components={'CAM_GENERATORS': [bad_cam]},
                      **{flag: True})
    with caplog.at_level(logging.WARNING, logger='wsss_core.plugin_loader'):
        loaded = plugin_loader.load_plugins(entry_points=eps(good, bad))
    rec = loaded[bad.name]
    assert rec.status == 'broken'
    assert f"plugin '{bad.name}' (module {bad.module}) {where}" in rec.reason
    assert cause in rec.reason
    assert rec.reason in caplog.text
    assert loaded[good.name].status == 'ok' and cam in registry.CAM_GENERATORS.module_dict
    assert bad_cam not in registry.CAM_GENERATORS.module_dict  # rolled back / never there


def test_failed_register_leaves_nothing_half_registered(core, root):
    from wsss_core import registry
    names = [unique('HalfA'), unique('HalfB')]
    bad = make_plugin(root, unique('half'), components={'MODELS': names}, register_error=True)
    loaded = plugin_loader.load_plugins(entry_points=eps(bad))
    assert loaded[bad.name].status == 'broken'
    assert not set(names) & set(registry.MODELS.module_dict)


def test_incompatible_api_version_names_both_versions(core, root):
    future = make_plugin(root, unique('future'), api_version=PLUGIN_API_VERSION + 1)
    rec = plugin_loader.load_plugins(entry_points=eps(future))[future.name]
    assert rec.status == 'incompatible'
    assert f'API version {PLUGIN_API_VERSION + 1}' in rec.reason
    assert f'API version {PLUGIN_API_VERSION}' in rec.reason and future.name in rec.reason


def test_manifest_name_must_match_the_entry_point(core, root):
    odd = make_plugin(root, unique('odd'), manifest_name='other')
    rec = plugin_loader.list_plugins(entry_points=eps(odd))[1]
    assert rec.status == 'broken' and "'other'" in rec.reason and odd.name in rec.reason


def test_a_name_installed_twice_is_reported(core, root):
    one = make_plugin(root, unique('twin'))
    two = make_plugin(root, unique('twin2'), package=unique('wsssfix_twin'))
    ep2 = importlib.metadata.EntryPoint(one.name, two.module, 'wsss.plugins')
    records = plugin_loader.list_plugins(entry_points=[one.entry_point(), ep2])
    assert [r.status for r in records[1:]] == ['not-loaded', 'broken']
    assert 'installed twice' in records[2].reason and one.module in records[2].reason


def test_unknown_registry_in_manifest_is_broken(core, root):
    odd = make_plugin(root, unique('reg'), components={'NO_SUCH_REGISTRY': ['X']},
                      registers={})
    rec = plugin_loader.load_plugins(entry_points=eps(odd))[odd.name]
    assert rec.status == 'broken' and 'NO_SUCH_REGISTRY' in rec.reason


# ----------------------------------------------------------------------------- duplicates
def test_declared_duplicate_marks_the_later_plugin_naming_both(core, root):
    from wsss_core import registry
    cam = unique('DupCam')
    first = make_plugin(root, unique('adup'), components={'CAM_GENERATORS': [cam]})
    later = make_plugin(root, unique('bdup'), components={'CAM_GENERATORS': [cam]})
    listed = by_name(plugin_loader.list_plugins(entry_points=eps(later, first)))
    assert listed[later.name].status == 'broken'  # found from manifests, before registering
    assert cam not in registry.CAM_GENERATORS.module_dict
    loaded = plugin_loader.load_plugins(entry_points=eps(later, first))
    reason = loaded[later.name].reason
    assert loaded[later.name].status == 'broken' and loaded[first.name].status == 'ok'
    assert f"CAM_GENERATORS '{cam}' is provided by both '{first.name}' and '{later.name}'" \
        in reason
    assert registry.CAM_GENERATORS.get(cam).__module__ == f'{first.package}.components'


def test_undeclared_duplicate_at_register_names_both(core, root):
    from wsss_core import registry
    cam = unique('SneakyCam')
    first = make_plugin(root, unique('aown'), components={'CAM_GENERATORS': [cam]})
    sneaky = make_plugin(root, unique('bsneak'), components={},
                         registers={'CAM_GENERATORS': [cam]})
    loaded = plugin_loader.load_plugins(entry_points=eps(first, sneaky))
    rec = loaded[sneaky.name]
    assert rec.status == 'broken'
    assert f"'{cam}' is already registered by plugin '{first.name}'" in rec.reason
    assert sneaky.name in rec.reason and 'KeyError' in rec.reason
    assert registry.CAM_GENERATORS.get(cam).__module__ == f'{first.package}.components'


# ----------------------------------------------------------------------------- dependencies
def test_dependencies_load_first_and_missing_ones_are_reported(core, root):
    base = make_plugin(root, unique('zbase'), components={'MODELS': [unique('Base')]})
    child = make_plugin(root, unique('achild'), requires=[base.name])
    bad = make_plugin(root, unique('bad'), register_error=True)
    orphan = make_plugin(root, unique('orphan'), requires=['not_installed_anywhere'])
    needs_bad = make_plugin(root, unique('needsbad'), requires=[bad.name])
    loaded = plugin_loader.load_plugins(entry_points=eps(base, child, bad, orphan, needs_bad))
    names = list(loaded.names())
    assert names.index(base.name) < names.index(child.name)
    assert names.index(bad.name) < names.index(needs_bad.name)
    assert loaded[child.name].status == 'ok'
    assert loaded[orphan.name].status == 'missing-dependency'
    assert "'not_installed_anywhere', which is not installed" in loaded[orphan.name].reason
    assert loaded[needs_bad.name].status == 'missing-dependency'
    assert f"'{bad.name}', which is broken" in loaded[needs_bad.name].reason


def test_dependency_cycle_is_broken(core, root):
    a_name, b_name = unique('cyca'), unique('cycb')
    a = make_plugin(root, a_name, requires=[b_name])
    b = make_plugin(root, b_name, requires=[a_name])
    records = by_name(plugin_loader.list_plugins(entry_points=eps(a, b)))
    assert 'dependency cycle' in records[a_name].reason
    assert {records[a_name].status, records[b_name].status} <= {'broken', 'missing-dependency'}


# ----------------------------------------------------------------------------- restriction
def test_env_var_restricts_and_pulls_in_requirements(core, root, monkeypatch):
    from wsss_core import registry
    base, other = unique('base'), unique('other')
    b = make_plugin(root, base, components={'MODELS': [unique('EnvBase')]})
    child = make_plugin(root, unique('child'), requires=[base])
    o = make_plugin(root, other, components={'MODELS': [unique('EnvOther')]})
    monkeypatch.setenv(plugin_loader.ENV_VAR, f' {child.name} ')
    loaded = plugin_loader.load_plugins(entry_points=eps(b, child, o))
    assert set(loaded.loaded) == {'core', base, child.name}
    assert loaded[other].status == 'disabled'
    assert plugin_loader.ENV_VAR in loaded[other].reason
    assert o.components['MODELS'][0] not in registry.MODELS.module_dict


def test_explicit_enabled_wins_over_env_and_empty_means_all(core, root, monkeypatch):
    a, b = make_plugin(root, unique('ea')), make_plugin(root, unique('eb'))
    monkeypatch.setenv(plugin_loader.ENV_VAR, a.name)
    records = by_name(plugin_loader.list_plugins(entry_points=eps(a, b), enabled=[b.name]))
    assert records[a.name].status == 'disabled' and records[b.name].status == 'not-loaded'
    monkeypatch.setenv(plugin_loader.ENV_VAR, '')
    records = plugin_loader.list_plugins(entry_points=eps(a, b))
    assert all(r.status == 'not-loaded' for r in records)


def test_unknown_enabled_name_lists_installed_plugins(core, root, monkeypatch):
    a = make_plugin(root, unique('known'))
    with pytest.raises(plugin_loader.PluginSelectionError) as err:
        plugin_loader.load_plugins(enabled=['nosuchplugin'], entry_points=eps(a))
    assert "'nosuchplugin'" in str(err.value) and f'core, {a.name}' in str(err.value)
    assert "plugins=['nosuchplugin'] (the config's `plugins`" in str(err.value)
    assert 'not installed' in str(err.value) and 'pip install -e plugins/NAME' in str(err.value)
    monkeypatch.setenv(plugin_loader.ENV_VAR, 'nosuchplugin')
    with pytest.raises(plugin_loader.PluginSelectionError, match=plugin_loader.ENV_VAR):
        plugin_loader.list_plugins(entry_points=eps(a))


# ----------------------------------------------------------------------------- reporting
def test_plugin_table_has_one_line_per_plugin(core, root):
    cam = unique('TableCam')
    good = make_plugin(root, unique('tgood'), components={'CAM_GENERATORS': [cam]},
                       version='2.3.4')
    bad = make_plugin(root, unique('tbad'), import_error=True)
    records = plugin_loader.list_plugins(entry_points=eps(good, bad))
    lines = plugin_loader.format_plugin_table(records).splitlines()
    assert len(lines) == 3 and lines[0].startswith('core ')
    good_line = next(l for l in lines if l.startswith(good.name))
    assert good_line.split()[1:4] == ['2.3.4', 'not-loaded', cam]
    bad_line = next(l for l in lines if l.startswith(bad.name))
    assert 'broken' in bad_line and 'ModuleNotFoundError' in bad_line
    assert plugin_loader.format_plugin_table([]) == '(no plugins)'


def test_plugin_set_lookup(core, root):
    a = make_plugin(root, unique('set'))
    loaded = plugin_loader.load_plugins(entry_points=eps(a))
    assert a.name in loaded and 'nope' not in loaded and len(loaded) == 2
    assert loaded.names('ok') == ('core', a.name)
    with pytest.raises(KeyError, match=a.name):
        loaded['nope']
    assert loaded.table() == plugin_loader.format_plugin_table(loaded.records)


def test_component_provider_names_a_plugin_that_is_not_loaded(core, root):
    from wsss_core import registry
    cam = unique('ProvCam')
    off = make_plugin(root, unique('prov'), components={'CAM_GENERATORS': [cam]})
    loaded = plugin_loader.load_plugins(enabled=['core'], entry_points=eps(off))
    assert loaded[off.name].status == 'disabled'
    assert plugin_loader.component_provider(cam) == off.name
    assert plugin_loader.component_provider('NoSuchComponentAnywhere') is None
    with pytest.raises(registry.UnknownComponentError, match=f"plugin '{off.name}'"):
        registry.build(dict(type=cam), registry.CAM_GENERATORS)


# ----------------------------------------------------------------------------- subprocesses
def run_python(code: str, *paths: Path) -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([str(REPO), *map(str, paths)])
    env.pop(plugin_loader.ENV_VAR, None)
    out = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_listing_core_and_plugins_imports_no_torch(tmp_path):
    a = make_plugin(tmp_path, unique('light'), components={'MODELS': ['LightA']})
    b = make_plugin(tmp_path, unique('light'), components={'HOOKS': ['LightB']})
    result = run_python(f'''
        import importlib.metadata, json, sys
        from wsss_core import plugin_loader
        eps = [importlib.metadata.EntryPoint(n, m, 'wsss.plugins')
               for n, m in {[(a.name, a.module), (b.name, b.module)]!r}]
        records = plugin_loader.list_plugins(entry_points=eps)
        print(plugin_loader.format_plugin_table(records), file=sys.stderr)
        print(json.dumps(dict(statuses=[r.status for r in records],
                              names=[r.name for r in records],
                              torch='torch' in sys.modules,
                              registry='wsss_core.registry' in sys.modules)))
        ''', tmp_path)
    assert result['names'] == ['core', a.name, b.name]
    assert result['statuses'] == ['not-loaded'] * 3
    assert not result['torch'] and not result['registry']


def test_installed_distribution_is_found_through_entry_points(tmp_path):
    name = unique('dist')
    fake = make_plugin(tmp_path, name, components={'MODELS': [unique('DistModel')]})
    write_distribution(tmp_path, f'wsss-{name}', '7.8.9', {name: fake.module})
    result = run_python(f'''
        import json
        from wsss_core import plugin_loader
        rec = [r for r in plugin_loader.list_plugins() if r.name == {name!r}]
        print(json.dumps([dict(name=r.name, status=r.status, distribution=r.distribution,
                               module=r.module, version=r.version) for r in rec]))
        ''', tmp_path)
    assert result == [dict(name=name, status='not-loaded', distribution=f'wsss-{name}',
                           module=fake.module, version='0.1.0')]
