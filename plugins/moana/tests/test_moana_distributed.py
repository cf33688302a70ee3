"""The whole IRN route under ``torchrun --nproc_per_node=2`` (gloo, CPU): the classifier, the
IRN and DeepLab train with DDP, the per-image stages split their images between the ranks."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

from wsss_core.pipeline import read_manifest
from wsss_moana.testing import TINY_GENERATOR, registered  # noqa: F401 (fixture)

from test_moana_configs import load, shrink_wsss

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_irn_route_runs_under_torchrun_with_two_ranks(tmp_path, registered):
    cfg = shrink_wsss(load('synthetic.py'))
    cfg['stages'] = [s for s in cfg['stages'] if s['name'].startswith(('base_', 'eval_base_'))]
    cfg.dump(str(tmp_path / 'cfg.py'))
    env = dict(os.environ, OMP_NUM_THREADS='1', MASTER_ADDR='127.0.0.1')
    env.pop('WSSS_SHARD', None)
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
           f'--master_port={_free_port()}', '-m', 'wsss_core.cli', str(tmp_path / 'cfg.py'),
           '--launcher', 'pytorch', '--work-dir', str(tmp_path / 'wd'), '--no-progress']
    out = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    # mmengine's environment dump goes to the stage log, not the console
    stage_log = (tmp_path / 'wd' / 'base_classify' / 'stage.log').read_text()
    assert 'Distributed training: True' in stage_log
    assert 'Distributed training: True' not in out.stdout + out.stderr
    wd, n_train, n_val = tmp_path / 'wd', TINY_GENERATOR['num_train'], TINY_GENERATOR['num_val']
    for stage in ('base_cams', 'base_ir_labels', 'base_rw_labels'):   # split, then merged
        manifest = read_manifest(wd / stage)
        assert manifest['shards'] == 2 and manifest['counts']['computed'] == n_train, stage
        assert len(list((wd / stage).rglob('*.npz')) + list((wd / stage).rglob('*.png'))) \
            == n_train, stage
    assert read_manifest(wd / 'base_irn')['counts']['backbone_copied'] > 0
    assert read_manifest(wd / 'base_deeplab')['counts']['iterations'] == 2
    test = read_manifest(wd / 'base_test')
    assert test['shards'] == 2 and test['counts']['evaluated'] == n_val
    assert 0.0 <= test['metrics']['miou_crf'] <= 1.0
