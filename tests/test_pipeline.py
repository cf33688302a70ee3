"""Pipeline behaviour: skip when done, resume after an interruption, reruns on config change."""
from __future__ import annotations

import contextlib

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.hooks import Hook

from wsss_core.io import load_cam
from wsss_core.pipeline import Pipeline, StageError, read_manifest
from wsss_core.registry import HOOKS

from wsss_core.testing import tiny_pipeline_cfg


class Interrupted(Exception):
    pass


def run(cfg, work_dir, **kw):
    return {r.name: r for r in Pipeline(Config(cfg), work_dir, progress=False, **kw).run()}


def cam_arrays(work_dir):
    return {p.stem: load_cam(p)[0] for p in sorted((work_dir / 'cams' / 'cams').glob('*.npz'))}


@pytest.fixture
def finished(tmp_path, tiny_data_cfg):
    cfg = tiny_pipeline_cfg(tiny_data_cfg)
    results = run(cfg, tmp_path)
    return cfg, tmp_path, results


def test_second_run_skips_every_stage(finished):
    cfg, work_dir, first = finished
    assert {r.status for r in first.values()} == {'ran'}
    before = (work_dir / 'cams' / 'manifest.json').stat().st_mtime_ns
    again = run(cfg, work_dir)
    assert {r.status for r in again.values()} == {'skipped'}
    assert (work_dir / 'cams' / 'manifest.json').stat().st_mtime_ns == before
    assert again['eval_labels'].manifest['metrics'] == first['eval_labels'].manifest['metrics']


def test_interrupted_cam_stage_resumes_with_same_artifacts(finished, monkeypatch):
    cfg, work_dir, _ = finished
    reference = cam_arrays(work_dir)
    assert len(reference) == 16

    import wsss_core.pipeline.make_cams as make_cams
    real_save, calls = make_cams.save_cam, []

    def failing_save(path, *args, **kwargs):
        if len(calls) == 5:
            raise Interrupted('simulated crash')
        calls.append(path)
        real_save(path, *args, **kwargs)

    monkeypatch.setattr(make_cams, 'save_cam', failing_save)
    with pytest.raises(Interrupted):
        run(cfg, work_dir, only=['cams'])
    cam_dir = work_dir / 'cams' / 'cams'
    assert len(list(cam_dir.glob('*.npz'))) == 5
    assert not [p for p in cam_dir.iterdir() if p.suffix != '.npz'], 'half-written file left'
    assert read_manifest(work_dir / 'cams') is None

    monkeypatch.setattr(make_cams, 'save_cam', real_save)
    res = run(cfg, work_dir, only=['cams'])['cams']
    assert res.status == 'resumed'
    assert res.manifest['counts'] == dict(images=16, computed=11, reused=5)
    resumed = cam_arrays(work_dir)
    assert resumed.keys() == reference.keys()
    for key in reference:
        np.testing.assert_allclose(resumed[key], reference[key], atol=2e-3)


def test_config_change_reruns_the_stage_and_what_follows(finished):
    cfg, work_dir, _ = finished
    cfg['stages'][2]['refiners'] = [dict(type='BackgroundThreshold', threshold=0.6)]
    res = run(cfg, work_dir)
    assert [res[n].status for n in ('classify', 'cams')] == ['skipped', 'skipped']
    assert [res[n].status for n in ('labels', 'eval_labels')] == ['ran', 'ran']
    assert (work_dir / '.superseded' / 'labels' / 'manifest.json').is_file()


def test_selected_stage_is_redone_and_others_untouched(finished):
    cfg, work_dir, _ = finished
    res = run(cfg, work_dir, only=['labels'])
    assert res['labels'].status == 'ran'
    assert res['classify'].status == res['eval_labels'].status == 'not selected'


def test_unknown_selected_stage_is_an_error(tmp_path, tiny_data_cfg):
    with pytest.raises(StageError, match='unknown stage'):
        Pipeline(Config(tiny_pipeline_cfg(tiny_data_cfg)), tmp_path, only=['nope'])


def test_stage_reading_a_later_stage_is_rejected(tmp_path, tiny_data_cfg):
    cfg = tiny_pipeline_cfg(tiny_data_cfg)
    cfg['stages'][1], cfg['stages'][2] = cfg['stages'][2], cfg['stages'][1]
    with pytest.raises(StageError, match="reads 'cams'"):
        Pipeline(Config(cfg), tmp_path)


# ----------------------------------------------------------------------------- training
_TRAIN = {'fail_after_epoch': None, 'iters': 0}


@HOOKS.register_module()
class _TestInterruptTraining(Hook):
    priority = 'LOWEST'  # after the checkpoint hook saved the epoch

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        _TRAIN['iters'] += 1

    def after_train_epoch(self, runner):
        if _TRAIN['fail_after_epoch'] == runner.epoch + 1:  # epoch is 0-based here
            raise Interrupted(f'simulated crash after epoch {runner.epoch + 1}')


def _training_cfg(data_cfg):
    cfg = tiny_pipeline_cfg(data_cfg, epochs=2)
    cfg['stages'] = cfg['stages'][:1]
    cfg['stages'][0]['custom_hooks'] = [dict(type='_TestInterruptTraining')]
    cfg['stages'][0]['val_split'] = None
    return cfg


def test_interrupted_training_resumes_from_checkpoint_with_resume(tmp_path, tiny_data_cfg):
    cfg = _training_cfg(tiny_data_cfg)
    _TRAIN.update(fail_after_epoch=1, iters=0)
    with pytest.raises(Interrupted):
        run(cfg, tmp_path)
    iters_per_epoch = _TRAIN['iters']
    assert (tmp_path / 'classify' / 'epoch_1.pth').is_file()
    assert not (tmp_path / 'classify' / 'epoch_2.pth').exists()

    _TRAIN.update(fail_after_epoch=None, iters=0)
    res = run(cfg, tmp_path, resume=True)['classify']   # torch.load(weights_only) must succeed
    assert res.status == 'resumed'
    assert _TRAIN['iters'] == iters_per_epoch, 'resume must only train the missing epoch'
    assert (tmp_path / 'classify' / 'model.pth').is_file()


def test_interrupted_training_restarts_without_resume_and_keeps_old_files(tmp_path, tiny_data_cfg):
    cfg = _training_cfg(tiny_data_cfg)
    _TRAIN.update(fail_after_epoch=1, iters=0)
    with pytest.raises(Interrupted):
        run(cfg, tmp_path)
    iters_per_epoch = _TRAIN['iters']
    _TRAIN.update(fail_after_epoch=None, iters=0)
    res = run(cfg, tmp_path)['classify']
    assert res.status == 'ran'
    assert _TRAIN['iters'] == 2 * iters_per_epoch
    assert (tmp_path / '.superseded' / 'classify' / 'epoch_1.pth').is_file()


def test_label_evaluation_equals_a_direct_confusion_matrix(finished, tiny_data_cfg):
    from wsss_core.datasets import build_dataset
    from wsss_core.evaluation import ConfusionMatrix
    from wsss_core.io import read_label_png
    _, work_dir, results = finished
    ds = build_dataset(tiny_data_cfg, split='train')
    conf = ConfusionMatrix(ds.num_classes + 1)
    for i in range(len(ds)):
        s = ds.load_sample(i)
        conf.update(read_label_png(work_dir / 'labels' / 'labels' / f"{s['img_id']}.png"), s['gt_seg'])
    assert results['eval_labels'].manifest['metrics']['miou'] == pytest.approx(conf.miou())


@contextlib.contextmanager
def lock_held_by_a_child(work_dir):
    """A forked process holds ``work_dir_lock(work_dir)`` inside the block; yields its pid."""
    import multiprocessing as mp
    from wsss_core.pipeline.pipeline import work_dir_lock
    ctx = mp.get_context('fork')
    started, release = ctx.Event(), ctx.Event()

    def hold():
        with work_dir_lock(work_dir):
            started.set()
            release.wait(30)

    holder = ctx.Process(target=hold)
    holder.start()
    try:
        assert started.wait(30)
        yield holder.pid
    finally:
        release.set()
        holder.join(30)


def test_a_second_run_on_the_same_work_dir_is_refused(tmp_path, tiny_data_cfg):
    from wsss_core.pipeline.pipeline import WorkDirBusyError, work_dir_lock
    with lock_held_by_a_child(tmp_path) as holder_pid:
        with pytest.raises(WorkDirBusyError, match=f'pid {holder_pid}'):
            run(tiny_pipeline_cfg(tiny_data_cfg), tmp_path)
    with work_dir_lock(tmp_path):   # free again once the holder is gone
        pass


def test_make_cams_resize_runs_the_network_at_the_training_size(tmp_path, tiny_data_cfg):
    """``resize=dict(size=...)``: the classifier sees the resized image, the maps come back at
    the image size and equal a direct computation at the resized size, upsampled."""
    import torch
    import torch.nn.functional as F
    from wsss_core.datasets import build_dataset
    from wsss_core.datasets.transforms import Resize
    from wsss_core.pipeline.artifacts import TRAINED_MODEL
    cfg = tiny_pipeline_cfg(tiny_data_cfg)
    cfg['stages'] = cfg['stages'][:1] + [
        dict(type='MakeCAMs', name='cams', source='classify', scales=(1.0,), flip=False,
             resize=dict(size=(32, 32)), max_samples=2)]
    res = run(cfg, tmp_path)
    assert res['cams'].manifest['counts']['computed'] == 2
    from wsss_core.pipeline.stage import StageContext
    ctx = StageContext(cfg=Config(cfg), work_dir=tmp_path, stage_dir=tmp_path / 'cams')
    model = TRAINED_MODEL.read(ctx, 'classify', 'test', 'source').load()
    sample = build_dataset(tiny_data_cfg, split='train', load_gt=False).load_sample(0)
    small = Resize(size=(32, 32))(dict(img=sample['img']))['img']
    x = model.data_preprocessor.normalize(torch.from_numpy(small).permute(2, 0, 1)[None])
    with torch.no_grad():
        direct = F.relu(model.cam_logits(x))
    direct = F.interpolate(direct, size=sample['img'].shape[:2], mode='bilinear',
                           align_corners=False)[0]
    ids = np.flatnonzero(sample['labels'])
    cams, stored_ids = load_cam(tmp_path / 'cams' / 'cams' / f"{sample['img_id']}.npz")
    assert cams.shape[1:] == sample['img'].shape[:2] and list(stored_ids) == list(ids)
    expected = direct[ids] / (direct[ids].flatten(1).max(1).values.view(-1, 1, 1) + 1e-5)
    assert np.allclose(cams, expected.numpy(), atol=2e-3)


def test_same_seed_gives_the_same_trained_weights_whatever_the_rng_state(tmp_path, tiny_data_cfg):
    """The model is built after seeding: two runs with one seed, started from different
    global RNG states, train to identical weights (initial weights included)."""
    import torch
    cfg = tiny_pipeline_cfg(tiny_data_cfg)
    cfg['stages'] = cfg['stages'][:1]
    weights = []
    for k, state in enumerate((1, 12345)):
        torch.manual_seed(state)
        run(cfg, tmp_path / str(k))
        weights.append(torch.load(tmp_path / str(k) / 'classify' / 'model.pth',
                                  weights_only=True))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_a_hard_linked_copy_of_a_work_dir_has_a_lock_of_its_own(tmp_path):
    # `cp -al` copies share every file's inode: a lock held on the original's `.lock` file
    # would lock the copy too, and the copy's run would overwrite the original's note
    import os
    import re
    from wsss_core.pipeline.pipeline import WorkDirBusyError, work_dir_lock
    original, copy = tmp_path / 'original', tmp_path / 'copy'
    original.mkdir()
    copy.mkdir()
    with lock_held_by_a_child(original) as holder_pid:
        os.link(original / '.lock', copy / '.lock')
        here = re.escape(os.path.realpath(original))
        with pytest.raises(WorkDirBusyError, match=f'pid {holder_pid} .* in {here}'):
            with work_dir_lock(original):   # the shared file, held for this very work dir
                pass
        with work_dir_lock(copy):
            assert (copy / '.lock').read_text().startswith(f'pid {os.getpid()} ')
            assert os.stat(copy / '.lock').st_nlink == 1
        assert (original / '.lock').read_text().startswith(f'pid {holder_pid} ')
