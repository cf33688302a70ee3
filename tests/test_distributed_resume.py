"""Exact resume of a distributed training run: every rank's generator states in the checkpoint.

The ranks are seeded differently (``diff_rank_seed``), so each draws its own augmentations.
mmengine saves checkpoints on rank 0 only; :class:`RandomStateHook` gathers the states of all
ranks right before a save and each rank takes its own back on ``--resume``.

* Unit tests (a fake runner, rank / world size / ``all_gather_object`` monkeypatched to a
  world of 2): what the checkpoint holds, that each rank restores its own states, the
  fallback to rank 0's when the world size changed, old checkpoints, and that no gather
  happens on iterations without a checkpoint.
* A real run: ``torchrun`` with 2 ranks (gloo, CPU) trains the tiny classifier 2 epochs; a
  second run is killed (SIGKILL, every rank) after the first epoch's checkpoint and resumed
  with ``--resume``.  Each rank's augmented batches of epoch 2 and the final weights equal
  the uninterrupted run's.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import CheckpointHook

from wsss_core import compat
from wsss_core.pipeline import exact_resume
from wsss_core.pipeline.exact_resume import (CHECKPOINT_KEY, RandomStateHook,
                                             capture_random_state, restore_random_state)
from wsss_core.testing import tiny_data_cfg, tiny_pipeline_cfg
from wsss_core.testing.distributed import IMPORT, free_port, read_rank_records

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _keep_random_state():
    """The tests reseed the global generators: give the session its states back."""
    saved = capture_random_state()
    yield
    restore_random_state(saved)


# ----------------------------------------------------------------------------- a fake world
def _seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _draws() -> list:
    """Numbers from each global generator (torch, NumPy incl. a Gaussian, Python)."""
    return [torch.rand(3), np.random.randn(3), random.gauss(0.0, 1.0), random.random()]


def _assert_draws_equal(a: list, b: list) -> None:
    assert torch.equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2:] == b[2:]


class _World:
    """Two ranks in one process: ``all_gather_object`` returns what each rank captures when
    its generators are seeded with ``seeds[rank]`` (``rank`` is the calling rank)."""

    def __init__(self, monkeypatch, seeds=(10, 11)):
        self.seeds, self.rank, self.world = seeds, 0, len(seeds)
        self.gathers = []      # (runner.iter, runner.epoch) of every gather
        monkeypatch.setattr(exact_resume, 'get_dist_info', lambda: (self.rank, self.world))
        monkeypatch.setattr(exact_resume, 'all_gather_object', self.all_gather_object)

    def all_gather_object(self, obj):
        self.gathers.append((self.runner.iter, self.runner.epoch))
        mine = capture_random_state()
        states = []
        for r, seed in enumerate(self.seeds):
            _seed_all(seed)
            states.append(capture_random_state() if r != self.rank else obj)
        restore_random_state(mine)
        return states

    def attach(self, runner):
        self.runner = runner
        return runner


class _Logger:
    def __init__(self):
        self.warnings = []

    def warning(self, msg):
        self.warnings.append(msg)

    def info(self, msg):
        pass


def _runner(checkpoint_hook, *, epoch=0, it=0, max_epochs=3, max_iters=6):
    return SimpleNamespace(hooks=[checkpoint_hook], epoch=epoch, iter=it,
                           max_epochs=max_epochs, max_iters=max_iters, logger=_Logger(),
                           train_loop=SimpleNamespace())


def _saved(hook, runner) -> dict:
    """What rank 0's ``before_save_checkpoint`` puts into a checkpoint, through
    ``torch.save`` / ``torch.load(weights_only=True)``."""
    import io
    checkpoint = dict(meta=dict(epoch=runner.epoch + 1, iter=runner.iter))
    hook.before_save_checkpoint(runner, checkpoint)
    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


# ----------------------------------------------------------------------------- unit tests
def test_an_epoch_checkpoint_holds_every_ranks_states_and_each_rank_restores_its_own(
        monkeypatch):
    world = _World(monkeypatch)
    hook = RandomStateHook()
    runner = world.attach(_runner(CheckpointHook(interval=1, by_epoch=True)))
    _seed_all(10)                                   # rank 0's generators at the save
    hook.after_train_epoch(runner)
    assert world.gathers == [(0, 0)]
    checkpoint = _saved(hook, runner)
    stored = checkpoint[CHECKPOINT_KEY]
    assert stored['world_size'] == 2 and sorted(stored['ranks']) == [0, 1]

    want = []                                        # each rank's draws after the save
    for seed in world.seeds:
        _seed_all(seed)
        want.append(_draws())
    assert not torch.equal(want[0][0], want[1][0])   # the ranks really differ
    for rank in (0, 1):                              # a resumed run: each rank, fresh seeds
        world.rank = rank
        _seed_all(99)
        hook.after_load_checkpoint(runner, checkpoint)
        _assert_draws_equal(_draws(), want[rank])
    assert runner.logger.warnings == []


@pytest.mark.parametrize('new_world', [1, 3])
def test_a_changed_world_size_resumes_every_rank_from_rank_0_with_a_warning(monkeypatch,
                                                                             new_world):
    world = _World(monkeypatch)
    hook = RandomStateHook()
    runner = world.attach(_runner(CheckpointHook(interval=1, by_epoch=True)))
    _seed_all(10)
    hook.after_train_epoch(runner)
    checkpoint = _saved(hook, runner)
    _seed_all(10)
    rank0 = _draws()

    world.world = new_world
    for rank in range(new_world):
        world.rank = rank
        _seed_all(99)
        hook.after_load_checkpoint(runner, checkpoint)
        _assert_draws_equal(_draws(), rank0)
    assert len(runner.logger.warnings) == new_world
    assert all('2 ranks' in w and f'{new_world} rank' in w for w in runner.logger.warnings)


def test_a_checkpoint_from_before_per_rank_states_resumes_every_rank_from_its_states(
        monkeypatch):
    """The old layout (one set of states, rank 0's) goes to every rank, as before."""
    world = _World(monkeypatch)
    runner = world.attach(_runner(CheckpointHook(interval=1)))
    _seed_all(7)
    checkpoint = {CHECKPOINT_KEY: capture_random_state(), 'meta': dict(iter=2)}
    want = _draws()
    for rank in (0, 1):
        world.rank = rank
        _seed_all(99)
        RandomStateHook().after_load_checkpoint(runner, checkpoint)
        _assert_draws_equal(_draws(), want)
    assert runner.logger.warnings == []


def test_gathers_only_where_the_checkpoint_hook_saves(monkeypatch):
    """mmengine's predicates: every ``interval`` from ``save_begin``, plus the last one."""
    world = _World(monkeypatch)
    hook = RandomStateHook()
    by_iter = CheckpointHook(interval=2, by_epoch=False, save_begin=3, save_last=True)
    for it in range(6):                              # iterations 1..6, max_iters=6
        runner = world.attach(_runner(by_iter, it=it))
        hook.after_train_epoch(runner)               # an iteration-based hook: never here
        hook.after_train_iter(runner, batch_idx=it)
    # saves after iterations (iter + 1 - save_begin) % 2 == 0 -> 3, 5; and the last, 6
    assert [it + 1 for it, _ in world.gathers] == [3, 5, 6]

    world.gathers.clear()
    by_epoch = CheckpointHook(interval=2, by_epoch=True, save_last=False)
    for epoch in range(5):
        runner = world.attach(_runner(by_epoch, epoch=epoch, max_epochs=5))
        hook.after_train_iter(runner, batch_idx=0)   # an epoch-based hook: never here
        hook.after_train_epoch(runner)
    assert [epoch + 1 for _, epoch in world.gathers] == [2, 4]


def test_a_gather_serves_one_save_and_a_save_without_one_holds_rank_0_only(monkeypatch):
    """A save nobody announced (no gather before it, e.g. a user's own save) holds rank 0's
    states; resuming from it, rank 1 falls back to them with a warning."""
    world = _World(monkeypatch)
    hook = RandomStateHook()
    runner = world.attach(_runner(CheckpointHook(interval=1, by_epoch=False), it=0))
    _seed_all(10)
    hook.after_train_iter(runner, batch_idx=0)
    assert sorted(_saved(hook, runner)[CHECKPOINT_KEY]['ranks']) == [0, 1]
    again = _saved(hook, runner)[CHECKPOINT_KEY]       # the gathered states are used up
    assert again['world_size'] == 2 and list(again['ranks']) == [0]
    assert len(world.gathers) == 1

    _seed_all(10)
    rank0 = _draws()
    world.rank = 1
    _seed_all(99)
    hook.after_load_checkpoint(runner, {CHECKPOINT_KEY: again, 'meta': dict(epoch=1)})
    _assert_draws_equal(_draws(), rank0)
    assert len(runner.logger.warnings) == 1 and 'no states of rank 1' in \
        runner.logger.warnings[0]


def test_a_stale_gather_is_dropped_when_training_goes_on(monkeypatch):
    """States gathered for a save that did not come (a validation without a new best) are
    not put into a later checkpoint."""
    world = _World(monkeypatch)
    hook = RandomStateHook()
    ckpt = CheckpointHook(interval=-1, by_epoch=True, save_best='acc', save_last=False)
    runner = world.attach(_runner(ckpt))
    hook.after_val_epoch(runner, dict(acc=0.5))
    assert len(world.gathers) == 1
    hook.after_val_epoch(runner, {})                 # no metrics: the hook saves nothing
    assert len(world.gathers) == 1
    hook.before_train_epoch(runner)
    stored = _saved(hook, runner)[CHECKPOINT_KEY]
    assert list(stored['ranks']) == [0]


def test_the_hook_runs_right_before_the_checkpoint_hook():
    from mmengine.runner.priority import get_priority
    mine, theirs = get_priority(RandomStateHook.priority), get_priority(CheckpointHook.priority)
    assert mine < theirs and get_priority('LOW') < mine


# ----------------------------------------------------------------------------- torchrun
DIE_MODULE = '_wsss_test_die_after_epoch'
DIE_ENV = 'WSSS_TEST_DIE_AFTER_FIRST_EPOCH'
DIE_SOURCE = textwrap.dedent(f'''
    """Test-only: with {DIE_ENV} set, every rank SIGKILLs itself once the first epoch's
    checkpoint is written (the barrier waits for rank 0's save)."""
    import os
    import signal

    import torch.distributed as dist
    from mmengine.hooks import Hook

    from wsss_core.registry import HOOKS


    @HOOKS.register_module(force=True)
    class DieAfterFirstEpoch(Hook):
        priority = 'LOWEST'    # after the CheckpointHook

        def after_train_epoch(self, runner):
            if os.environ.get({DIE_ENV!r}) and runner.epoch == 0:
                dist.barrier()
                os.kill(os.getpid(), signal.SIGKILL)
''')


def _torchrun(cfg_path: Path, work_dir: Path, *args, env=()) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS='1', MASTER_ADDR='127.0.0.1', HF_HUB_OFFLINE='1',
               PYTHONPATH=os.pathsep.join([str(cfg_path.parent), str(REPO)]), **dict(env))
    env.pop('WSSS_SHARD', None)
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
           f'--master_port={free_port()}', '-m', 'wsss_core.cli', str(cfg_path),
           '--launcher', 'pytorch', '--work-dir', str(work_dir), '--no-progress', *args]
    return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=180)


def _weights(path: Path) -> dict:
    with compat.allow_mmengine_checkpoints():
        state = torch.load(path, map_location='cpu', weights_only=True)
    return state.get('state_dict', state)


def test_torchrun_killed_after_an_epoch_resumes_every_rank_to_the_uninterrupted_run(
        tmp_path, core_registered):
    (tmp_path / f'{DIE_MODULE}.py').write_text(DIE_SOURCE)
    cfg = tiny_pipeline_cfg(tiny_data_cfg(), epochs=2)
    cfg['stages'] = cfg['stages'][:1]
    cfg['stages'][0].update(val_split=None, num_workers=0, custom_hooks=[
        dict(type='RecordRanks', batch_keys=('img',)), dict(type='DieAfterFirstEpoch')])
    cfg['custom_imports'] = dict(imports=[IMPORT, DIE_MODULE], allow_failed_imports=False)
    cfg_path = tmp_path / 'tiny_resume.py'
    Config(cfg).dump(str(cfg_path))

    whole, cut = tmp_path / 'uninterrupted', tmp_path / 'resumed'
    out = _torchrun(cfg_path, whole)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    out = _torchrun(cfg_path, cut, env={DIE_ENV: '1'})
    assert out.returncode != 0 and 'SIGKILL' in out.stdout + out.stderr, \
        (out.stdout + out.stderr)[-4000:]
    stage = cut / 'classify'
    assert (stage / 'epoch_1.pth').is_file() and not (stage / 'epoch_2.pth').exists()
    assert not (stage / 'model.pth').exists()
    with compat.allow_mmengine_checkpoints():
        saved = torch.load(stage / 'epoch_1.pth', map_location='cpu', weights_only=True)
    assert saved[CHECKPOINT_KEY]['world_size'] == 2
    assert sorted(saved[CHECKPOINT_KEY]['ranks']) == [0, 1]

    out = _torchrun(cfg_path, cut, '--resume')
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]

    ref, got = read_rank_records(whole / 'classify'), read_rank_records(stage)
    for rank in (0, 1):
        assert [s['epoch'] for s in ref[rank]['steps']] == [0, 1]
        assert [s['epoch'] for s in got[rank]['steps']] == [1]   # only epoch 2 was redone
        want, have = ref[rank]['steps'][1], got[rank]['steps'][0]
        assert have['img_id'] == want['img_id']
        assert torch.equal(have['img'], want['img']), f'rank {rank}: other augmentations'
    for rank in (0, 1):
        assert got[rank]['end_digest'] == ref[rank]['end_digest'], f'rank {rank}'
    final, resumed = _weights(whole / 'classify' / 'model.pth'), _weights(stage / 'model.pth')
    assert final.keys() == resumed.keys()
    for key in final:
        assert torch.equal(final[key], resumed[key]), key
