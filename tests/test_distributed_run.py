"""``wsss-run --launcher pytorch`` under ``torchrun --nproc_per_node=2`` (gloo, CPU).

TrainClassifier trains with DDP (each rank on its half of every epoch, recorded by a
test-only hook that the config imports) and MakeCAMs splits the images between the ranks.
The CAMs must equal those of a single-process MakeCAMs from the same trained weights (the
weights themselves differ from a single-process training: other batches), and the one
manifest must count the images of both ranks.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from wsss_core.config import load_config
from wsss_core.io import load_cam
from wsss_core.pipeline import Pipeline, read_manifest
from wsss_core.testing import tiny_data_cfg, tiny_pipeline_cfg

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOOK_MODULE = '_wsss_test_rank_steps'

HOOK_SOURCE = textwrap.dedent('''
    """Test-only hook: each rank writes the images it trained on and its iteration count."""
    import json
    import os

    import torch.distributed as dist
    from mmengine.hooks import Hook

    from wsss_core.registry import HOOKS


    @HOOKS.register_module(force=True)
    class RecordRankSteps(Hook):
        def __init__(self, out_dir):
            self.out_dir, self.batches = out_dir, []

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            self.batches.append(list(data_batch['img_id']))

        def after_train(self, runner):
            rank = dist.get_rank() if dist.is_initialized() else 0
            world = dist.get_world_size() if dist.is_initialized() else 1
            os.makedirs(self.out_dir, exist_ok=True)
            with open(os.path.join(self.out_dir, f'rank{rank}.json'), 'w') as fh:
                json.dump(dict(rank=rank, world=world, batches=self.batches,
                               wrapper=type(runner.model).__name__), fh)
''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _cams(work_dir):
    return {p.stem: load_cam(p) for p in sorted((work_dir / 'cams' / 'cams').glob('*.npz'))}


@pytest.fixture
def config_file(tmp_path, core_registered, monkeypatch):
    (tmp_path / f'{HOOK_MODULE}.py').write_text(HOOK_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))   # the in-process run imports it too
    cfg = tiny_pipeline_cfg(tiny_data_cfg(), epochs=2)
    cfg['stages'] = cfg['stages'][:2]
    cfg['stages'][0].update(val_split=None, custom_hooks=[
        dict(type='RecordRankSteps', out_dir=str(tmp_path / 'steps'))])
    cfg['custom_imports'] = dict(imports=[HOOK_MODULE], allow_failed_imports=False)
    path = tmp_path / 'tiny_dist.py'
    path.write_text('\n'.join(f'{k} = {v!r}' for k, v in cfg.items()) + '\n')
    return path


def test_torchrun_two_ranks_train_and_make_the_single_process_cams(config_file, tmp_path):
    work_dir = tmp_path / 'ddp'
    env = dict(os.environ, OMP_NUM_THREADS='1', MASTER_ADDR='127.0.0.1',
               PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get('PYTHONPATH', '')]))
    env.pop('WSSS_SHARD', None)
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
           f'--master_port={_free_port()}', '-m', 'wsss_core.cli', str(config_file),
           '--launcher', 'pytorch', '--work-dir', str(work_dir), '--no-progress']
    out = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]

    # both ranks trained, under DDP, each on its own half of every epoch
    ranks = [json.loads((tmp_path / 'steps' / f'rank{r}.json').read_text()) for r in (0, 1)]
    assert [r['world'] for r in ranks] == [2, 2]
    assert {r['wrapper'] for r in ranks} == {'DeviceAwareDDP'}
    train_ids = set(_cams(work_dir))
    assert len(train_ids) == 16
    # 2 epochs of one step per rank: 16 images / 2 ranks = one batch of 8 each
    assert [len(r['batches']) for r in ranks] == [2, 2]
    for epoch in (0, 1):   # each epoch the ranks split the training set between them
        mine, theirs = (set(r['batches'][epoch]) for r in ranks)
        assert len(mine) == len(theirs) == 8
        assert not mine & theirs and mine | theirs == train_ids

    # MakeCAMs: the ranks' shares merged into one manifest
    manifest = read_manifest(work_dir / 'cams')
    assert manifest['counts'] == dict(images=16, computed=16, reused=0)
    assert manifest['shards'] == 2
    assert not (work_dir / 'cams' / 'shards').exists()  # no files: the ranks gathered

    # the same trained weights, MakeCAMs in one process: the same CAMs
    single = tmp_path / 'single'
    shutil.copytree(work_dir / 'classify', single / 'classify')
    res = {r.name: r for r in Pipeline(load_config(str(config_file)), single,
                                       progress=False).run()}
    assert res['classify'].status == 'skipped' and res['cams'].status == 'ran'
    assert res['cams'].manifest['counts'] == dict(images=16, computed=16, reused=0)
    ddp, one = _cams(work_dir), _cams(single)
    assert sorted(ddp) == sorted(one)
    for key in one:
        np.testing.assert_array_equal(ddp[key][1], one[key][1])     # class ids
        np.testing.assert_allclose(ddp[key][0], one[key][0], atol=2e-3)
