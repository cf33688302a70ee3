"""The plugin as the core sees it: discovery, manifest, registration, configs."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from wsss_core import plugin_loader
from wsss_deeplab.testing import registered  # noqa: F401 (fixture)


def test_plugin_is_discovered_with_its_components():
    from wsss_deeplab.plugin import COMPONENTS
    records = {r.name: r for r in plugin_loader.list_plugins()}
    assert 'deeplab' in records
    rec = records['deeplab']
    assert rec.status in ('ok', 'not-loaded'), rec.reason
    assert rec.distribution == 'wsss-deeplab'
    assert rec.requires == ('core',)
    assert {k: list(v) for k, v in rec.components.items()} == {
        k: list(table) for k, table in COMPONENTS.items()}
    assert 'TrainSegmentor' in plugin_loader.format_plugin_table(records.values())


def test_load_plugins_registers_every_declared_component(registered):
    from wsss_core import registry
    rec = registered['deeplab']
    assert rec.status == 'ok'
    for reg_name, names in rec.components.items():
        for name in names:
            assert registry.lookup(registry.ALL_REGISTRIES[reg_name], name) is not None
    assert plugin_loader.component_provider('DeepLabV2') == 'deeplab'


def test_entry_module_does_not_import_torch():
    code = ('import sys, wsss_deeplab.plugin as p; m = p.hookimpls.wsss_manifest(); '
            "print(m.name, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ['deeplab', 'False']


def test_configs_resolve_through_the_plugin_name():
    from wsss_core.config import resolve_config_path
    path = resolve_config_path('deeplab::synthetic.py')
    assert path.is_file() and Path(path).parent.name == 'configs'
