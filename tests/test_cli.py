"""wsss-run end to end on tiny data, --list-plugins, and its errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from wsss_core.testing import TINY_GENERATOR, tiny_pipeline_cfg


def wsss_run(*args, cwd=None):
    return subprocess.run([sys.executable, '-m', 'wsss_core.cli', *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd, env=dict(os.environ))


def test_list_plugins_shows_the_core():
    out = wsss_run('--list-plugins')
    assert out.returncode == 0, out.stderr
    first = out.stdout.splitlines()[0]
    assert first.split()[:2] == ['core', '0.1.0'] and 'MakeCAMs' in first


def test_run_writes_run_info_summary_and_table(tmp_path):
    cfg = tiny_pipeline_cfg(dict(type='SyntheticShapes', generator=dict(TINY_GENERATOR),
                                 progress=False))
    cfg['stages'].append(dict(type='RenderSheet', name='sheet', cams='cams', labels=['labels'],
                              num_images=2))
    config = tmp_path / 'tiny.py'
    config.write_text('\n'.join(f'{k} = {v!r}' for k, v in cfg.items()) + '\n')
    work = tmp_path / 'work'
    out = wsss_run(str(config), '--work-dir', str(work), '--no-progress',
                   '--cfg-options', 'stages.3.name=eval')
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'mIoU' in out.stdout and 'eval' in out.stdout
    assert f"sheet: {work / 'sheet' / 'sheet.png'}" in out.stdout
    for name in ('config.py', 'plugins.json', 'env.json', 'summary.json'):
        assert (work / name).is_file(), name
    summary = {s['stage']: s for s in json.loads((work / 'summary.json').read_text())}
    assert 0.0 <= summary['eval']['metrics']['miou'] <= 1.0
    assert "name='eval'" in (work / 'config.py').read_text().replace('"', "'")


def test_unknown_config_fails_cleanly(tmp_path):
    out = wsss_run('nosuchplugin::x.py', '--work-dir', str(tmp_path))
    assert out.returncode == 2
    assert 'nosuchplugin' in out.stderr and 'Traceback' not in out.stderr
