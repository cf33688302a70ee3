"""``wsss-run --list-configs [PLUGIN]``: every shipped config with its first comment line
(issue 20.5)."""
from __future__ import annotations

import os
import subprocess
import sys

from wsss_core import plugin_loader
from wsss_core.config import (_plugin_config_dir, config_summary, format_config_table,
                              list_configs, shipped_configs)


def test_config_summary_is_the_first_line_when_a_comment(tmp_path):
    (tmp_path / 'a.py').write_text('#   OAA on VOC; needs weights/x.pth\n# more\nseed = 0\n')
    (tmp_path / 'b.py').write_text('seed = 0\n# a comment later\n')
    assert config_summary(tmp_path / 'a.py') == 'OAA on VOC; needs weights/x.pth'
    assert config_summary(tmp_path / 'b.py') == '(no description)'


def test_format_pads_the_specs_to_one_column():
    table = format_config_table([('core::a.py', 'first'), ('oaa::longer.py', 'second')])
    assert table.splitlines() == ['core::a.py      first', 'oaa::longer.py  second']


def test_every_shipped_config_is_listed_with_a_useful_first_line():
    rows = shipped_configs()
    assert rows[0][0].startswith('core::')
    expected = set()
    for record in plugin_loader.discovered_plugins():
        if record.manifest is None or record.manifest.config_package is None:
            continue
        expected |= {f'{record.name}::{rel}'
                     for rel in list_configs(_plugin_config_dir(record.name))}
    assert {spec for spec, _ in rows} == expected
    for spec, summary in rows:   # what it runs, on which data, which files (or none) it needs
        assert summary != '(no description)' and len(summary) >= 30, spec
        assert 'needs' in summary, (spec, summary)
        # a fragment (not run alone) lives under a '_' folder such as _recipes/, never listed
        assert not spec.split('::')[1].rsplit('/', 1)[-1].startswith('_'), spec
        assert 'not run alone' not in summary, (spec, summary)


def test_one_plugin_only():
    rows = shipped_configs('oaa')
    assert rows and all(spec.startswith('oaa::') for spec, _ in rows)


def _cli(*args):
    code = ('import sys; from wsss_core.cli import main; status = main(sys.argv[1:]); '
            "print('torch imported:', 'torch' in sys.modules); sys.exit(status)")
    return subprocess.run([sys.executable, '-c', code, *args], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ))


def test_cli_lists_configs_without_importing_torch():
    out = _cli('--list-configs')
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith('core::quickstart.py  ') and 'SyntheticShapes' in lines[0]
    assert any(line.startswith('oaa::voc12_vgg16.py ') for line in lines)
    assert lines[-1] == 'torch imported: False'


def test_cli_unknown_plugin_exits_2():
    out = _cli('--list-configs', 'nosuchplugin')
    assert out.returncode == 2 and 'nosuchplugin' in out.stderr and 'installed' in out.stderr
