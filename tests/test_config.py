"""Config resolution, ``NAME::`` bases across plugins, cfg options and the run record."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mmengine.config import Config, DictAction

from wsss_core import config, plugin_loader
from wsss_core.config import ConfigError, load_config, resolve_config_path

sys.path.insert(0, str(Path(__file__).parent / 'fixtures' / 'plugins'))
from wsss_plugin_factory import make_plugin, unique, write_distribution  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

DATA = """\
_base_ = ['./common.py']
data = dict(type='SyntheticShapes', root='x', size=(3, 4), items=[1, 2])
lr = 0.1
"""
EXPERIMENT = """\
_base_ = ['{a}::base/data.py', './local.py']
lr = 0.2
model = dict(type='CAMClassifier', backbone=dict(type='SmallResNet', depth=dict(n=1)))
"""


@pytest.fixture
def root(tmp_path, monkeypatch):
    """sys.path entry for throwaway plugins, with a fresh discovery cache for this test."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugin_loader._STATE, 'discovered', None)
    return tmp_path


def install(root: Path, name: str, **kwargs):
    """A throwaway plugin, installed as a distribution found through importlib.metadata."""
    fake = make_plugin(root, name, **kwargs)
    write_distribution(root, f'wsss-{name}', '0.1.0', {name: fake.module})
    return fake


@pytest.fixture
def two_plugins(root):
    """Plugin A ships base/data.py (+ a relative base); plugin B's exp.py bases on A."""
    a = install(root, unique('cfga'), configs={
        'base/data.py': DATA, 'base/common.py': 'seed = 7\n'})
    b = install(root, unique('cfgb'), requires=[a.name], configs={
        'exp.py': EXPERIMENT.format(a=a.name), 'local.py': 'extra = True\n'})
    return a, b


# ----------------------------------------------------------------------------- resolution
def test_plain_path_with_relative_base(tmp_path):
    (tmp_path / 'common.py').write_text('seed = 7\n')
    (tmp_path / 'exp.py').write_text(DATA)
    assert resolve_config_path(str(tmp_path / 'exp.py')) == tmp_path / 'exp.py'
    cfg = load_config(str(tmp_path / 'exp.py'))
    assert cfg.seed == 7 and cfg.data.size == (3, 4) and cfg.lr == 0.1


def test_core_scope_resolves_into_the_core_configs_package():
    core_dir = REPO / 'wsss_core' / 'configs'
    shipped = config.list_configs(core_dir)
    if not shipped:
        pytest.skip('the core ships no configs yet')
    assert resolve_config_path(f'core::{shipped[0]}') == core_dir / shipped[0]


def test_core_scope_uses_the_core_manifest(root, monkeypatch):
    fake = make_plugin(root, 'core', package=unique('wsssfix_core'),
                       configs={'datasets/tiny.py': "data = dict(type='Tiny', n=2)\n"})
    monkeypatch.setattr(plugin_loader, 'CORE_MODULE', fake.module)
    (root / 'exp.py').write_text("_base_ = ['core::datasets/tiny.py']\nlr = 1\n")
    cfg = load_config(str(root / 'exp.py'))
    assert cfg.data == dict(type='Tiny', n=2) and cfg.lr == 1
    assert resolve_config_path('core::datasets/tiny.py') == \
        root / fake.package / 'configs' / 'datasets' / 'tiny.py'


def test_plugin_scope_with_base_chain_across_two_plugins(two_plugins):
    a, b = two_plugins
    path = resolve_config_path(f'{b.name}::exp.py')
    assert path.parent.name == 'configs' and path.parent.parent.name == b.package
    cfg = load_config(f'{b.name}::exp.py')
    assert cfg.seed == 7 and cfg.extra is True and cfg.lr == 0.2  # B overrides A
    assert cfg.data == dict(type='SyntheticShapes', root='x', size=(3, 4), items=[1, 2])
    assert '_scope_' not in cfg.data  # components live in wsss_core's scope, not 'cfga'


def test_cfg_options_override_nested_keys(two_plugins):
    _, b = two_plugins
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(['--cfg-options', 'model.backbone.depth.n=5', 'data.root=/d'])
    cfg = load_config(f'{b.name}::exp.py', args.cfg_options)
    assert cfg.model.backbone.depth.n == 5 and cfg.data.root == '/d'
    assert cfg.model.backbone.type == 'SmallResNet' and cfg.data['items'] == [1, 2]


def test_shim_is_installed_once_and_other_scopes_fall_through(tmp_path):
    config.install_config_shim()
    shim = Config.__dict__['_get_cfg_path']
    config.install_config_shim()
    assert Config.__dict__['_get_cfg_path'] is shim
    (tmp_path / 'exp.py').write_text("_base_ = ['mmdet::models/x.py']\n")
    # mmengine's own handling: 'mmdet is not installed' (or its missing pkg_resources)
    with pytest.raises(ModuleNotFoundError):
        load_config(str(tmp_path / 'exp.py'))


# ----------------------------------------------------------------------------- errors
def test_unknown_plugin_lists_installed_ones(two_plugins):
    a, b = two_plugins
    with pytest.raises(ConfigError) as err:
        resolve_config_path('nosuchplugin::x.py')
    msg = str(err.value)
    assert "unknown plugin 'nosuchplugin'" in msg and a.name in msg and b.name in msg
    assert 'core' in msg


def test_unknown_plugin_in_a_base_is_a_config_error(root):
    (root / 'exp.py').write_text("_base_ = ['nosuchplugin::x.py']\n")
    with pytest.raises(ConfigError, match="unknown plugin 'nosuchplugin'"):
        load_config(str(root / 'exp.py'))


def test_plugin_without_configs(root):
    bare = install(root, unique('bare'))
    with pytest.raises(ConfigError, match=f"plugin '{bare.name}' ships no configs"):
        resolve_config_path(f'{bare.name}::x.py')


def test_missing_file_lists_available_configs(two_plugins):
    a, _ = two_plugins
    with pytest.raises(ConfigError) as err:
        resolve_config_path(f'{a.name}::nope.py')
    msg = str(err.value)
    assert "config 'nope.py' not found in plugin" in msg
    assert 'available configs: base/common.py, base/data.py' in msg


@pytest.mark.parametrize('spec, match', [
    ('/definitely/not/here.py', 'config file not found: /definitely/not/here.py'),
    ('core::', "names no file after 'core::'"),
])
def test_bad_specs(spec, match):
    with pytest.raises(ConfigError, match=match):
        resolve_config_path(spec)


def test_a_plain_path_that_is_a_shipped_config_s_name_gets_the_spec():
    with pytest.raises(ConfigError) as err:
        resolve_config_path('quickstrat.py')     # misspelt, and without 'core::'
    assert 'config file not found: quickstrat.py; did you mean core::quickstart.py' in \
        str(err.value)
    assert 'wsss-run --list-configs' in str(err.value)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


# ----------------------------------------------------------------------------- run record
def test_dump_run_info_writes_three_files_and_the_config_reloads_equal(two_plugins, tmp_path):
    a, b = two_plugins
    cfg = load_config(f'{b.name}::exp.py', {'model.backbone.depth.n': 3})
    records = plugin_loader.list_plugins()
    work_dir = tmp_path / 'work'
    config.dump_run_info(cfg, work_dir, records)
    assert sorted(p.name for p in work_dir.iterdir()) == ['config.py', 'env.json',
                                                          'plugins.json']
    assert Config.fromfile(str(work_dir / 'config.py')).to_dict() == cfg.to_dict()

    dumped = {p['name']: p for p in json.loads((work_dir / 'plugins.json').read_text())}
    assert dumped[b.name] == dict(name=b.name, version='0.1.0', status='not-loaded',
                                  distribution=f'wsss-{b.name}', reason=None)
    assert next(iter(dumped)) == 'core'

    env = json.loads((work_dir / 'env.json').read_text())
    assert env['python'] == sys.version.split()[0]
    assert {'torch', 'torchvision', 'timm', 'mmengine', 'numpy', 'opencv', 'pillow'} <= \
        set(env['versions'])
    assert env['versions']['mmengine'] and env['versions']['numpy']
    assert isinstance(env['cuda_available'], bool) and env['cpus'] >= 1
    for key in ('platform', 'hostname', 'command_line', 'time', 'git_commit'):
        assert key in env


def test_git_commit_is_none_outside_a_repository(tmp_path):
    assert config._git_commit(cwd=tmp_path) is None


def test_loading_a_plugin_config_imports_no_torch(tmp_path):
    name = unique('light')
    fake = make_plugin(tmp_path, name, configs={'exp.py': "_base_ = ['./b.py']\nx = 1\n",
                                                'b.py': 'y = 2\n'})
    write_distribution(tmp_path, f'wsss-{name}', '0.1.0', {name: fake.module})
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(tmp_path)]))
    code = textwrap.dedent(f'''
        import sys
        from wsss_core.config import load_config
        cfg = load_config({name + '::exp.py'!r})
        assert (cfg.x, cfg.y) == (1, 2), cfg
        print('torch' in sys.modules)
        ''')
    out = subprocess.run([sys.executable, '-c', code], env=env, cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == 'False'
