"""ExportAttention and the accumulation hook in a real run on tiny SyntheticShapes:
TrainClassifier + OAAAccumulationHook -> ExportAttention -> EvaluateLabels(cams=...), the
stage's resume and missing-map handling, and an interrupted-and-resumed training run whose
accumulated maps equal the uninterrupted run's bit for bit."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from mmengine.config import Config

from wsss_oaa.stages.export_attention import zoom_attention
from wsss_oaa.testing import TINY_BACKBONE, TINY_GENERATOR, registered  # noqa: F401

DATA = dict(type='SyntheticShapes', generator=dict(TINY_GENERATOR), progress=False)


def train_stage(max_epochs=3, hook=None, extra_hooks=()):
    return dict(type='TrainClassifier', name='classify', max_epochs=max_epochs, batch_size=4,
                val_split=None, log_interval=100,
                model=dict(type='OAAClassifier', backbone=dict(TINY_BACKBONE), head_channels=16),
                pipeline=[dict(type='PackInputs', keys=('img', 'labels'))],
                custom_hooks=[dict(hook or dict(type='OAAAccumulationHook')), *extra_hooks])


def pipeline_cfg(**export):
    return dict(seed=0, data=dict(DATA), stages=[
        train_stage(),
        dict(type='ExportAttention', name='attention', source='classify', **export),
        dict(type='EvaluateLabels', name='eval', cams='attention')])


def run(cfg, work_dir, **kw):
    from wsss_core.pipeline import Pipeline
    torch.manual_seed(0)   # the model is built before the Runner seeds: same init every run
    return {r.name: r for r in Pipeline(Config(cfg), work_dir, progress=False, **kw).run()}


def gt_classes(split='train'):
    from wsss_core.datasets import build_dataset
    dataset = build_dataset(DATA, split=split, load_gt=False)
    return {r.img_id: sorted(r.class_ids) for r in dataset.records}


@pytest.fixture(scope='module')
def finished(tmp_path_factory, registered):
    work_dir = tmp_path_factory.mktemp('oaa_export')
    cfg = pipeline_cfg()
    return cfg, work_dir, run(cfg, work_dir)


# ----------------------------------------------------------------------------- zoom rule
def test_zoom_min_max_normalises_after_clipping_the_bicubic_overshoot():
    same = zoom_attention(np.array([[[0.2, 0.6], [0.4, 0.2]]]), (2, 2))
    assert np.allclose(same, [[[0.0, 1.0], [0.5, 0.0]]])        # identity resize, then min-max
    assert np.array_equal(zoom_attention(np.full((1, 3, 3), 0.4), (6, 6)), np.zeros((1, 6, 6)))
    bars = np.array([[[0.0, 1.0, 1.0, 0.0, 0.0, 1.0]] * 2])
    out = zoom_attention(bars, (2, 24))
    assert out.min() == 0.0 and out.max() == 1.0
    assert (out == 1.0).sum() > 2 and (out == 0.0).sum() > 2      # overshoot clipped at 0 and 1
    quant = zoom_attention(np.array([[[0.0, 0.3333, 1.0]]]), (1, 3), quantize=True)
    assert np.allclose(quant * 255, [[[0, 84, 255]]])             # floor(84.99) = 84
    assert zoom_attention(np.zeros((0, 2, 2)), (5, 7)).shape == (0, 5, 7)


# ----------------------------------------------------------------------------- pipeline
def test_accumulated_maps_cover_every_gt_class_at_cam_resolution(finished):
    from wsss_core.io import load_cam
    _, work_dir, _ = finished
    acc_dir = work_dir / 'classify' / 'accumulated'
    gt = gt_classes()
    assert sorted(p.stem for p in acc_dir.glob('*.npz')) == sorted(gt)
    for img_id, classes in gt.items():
        maps, ids = load_cam(acc_dir / f'{img_id}.npz')
        assert ids.tolist() == classes                            # the last-epoch fill
        assert maps.shape == (len(classes), 6, 6)                 # 48 px / stride 8
        assert maps.min() >= 0.0 and maps.max() <= 1.0
        assert np.allclose(maps.max(axis=(1, 2)), 1.0, atol=1e-3)   # max-normalised maps
    summary = json.loads((acc_dir / 'summary.json').read_text())
    assert summary['images'] == 16 and summary['maps'] == sum(map(len, gt.values()))
    assert summary['epochs_accumulated'] == [1, 2] and summary['quantize'] is False


def test_checkpoint_holds_the_store_loadable_with_weights_only(finished):
    from wsss_core import compat
    from wsss_core.io import load_cam
    from wsss_oaa.accumulation import AttentionStore
    _, work_dir, _ = finished
    with compat.allow_mmengine_checkpoints():
        ckpt = torch.load(work_dir / 'classify' / 'epoch_3.pth', weights_only=True)
    store = AttentionStore.from_state_dict(ckpt['oaa_store'])
    for (img_id, c), amap in store.final().items():
        maps, ids = load_cam(work_dir / 'classify' / 'accumulated' / f'{img_id}.npz')
        exported = maps[ids.tolist().index(c)]
        assert np.array_equal(exported, amap.astype(np.float16).astype(np.float32))


def test_export_writes_image_size_cams_that_the_core_evaluates(finished):
    from wsss_core.io import load_cam
    _, work_dir, res = finished
    manifest = res['attention'].manifest
    assert manifest['artifacts']['cams'] == 'cams' and manifest['artifacts']['split'] == 'train'
    assert manifest['artifacts']['num_classes'] == 3
    assert manifest['counts'] == dict(images=16, computed=16, reused=0, zero_filled_maps=0)
    gt = gt_classes()
    for img_id, classes in gt.items():
        cams, ids = load_cam(work_dir / 'attention' / 'cams' / f'{img_id}.npz')
        assert ids.tolist() == classes and cams.shape == (len(classes), 48, 48)
        acc, _ = load_cam(work_dir / 'classify' / 'accumulated' / f'{img_id}.npz')
        expected = zoom_attention(acc, (48, 48)).astype(np.float16).astype(np.float32)
        assert np.array_equal(cams, expected)
    metrics = res['eval'].manifest['metrics']
    assert 0.0 <= metrics['miou'] <= 1.0 and 0.0 <= metrics['oracle_miou'] <= 1.0


def test_interrupted_export_resumes_and_missing_maps_are_named_or_zero_filled(finished,
                                                                              tmp_path):
    from wsss_core.io import DataFileError, load_cam
    cfg, work_dir, _ = finished
    out = work_dir / 'attention'
    (out / 'manifest.json').unlink()
    victims = sorted((out / 'cams').glob('*.npz'))[:3]
    for path in victims:
        path.unlink()
    res = run(cfg, work_dir)
    assert res['attention'].status == 'resumed'
    assert res['attention'].manifest['counts']['computed'] == 3
    # an image without accumulated maps: named, or zero maps on request
    shutil.copytree(work_dir / 'classify', tmp_path / 'classify')
    img_id = sorted(gt_classes())[0]
    (tmp_path / 'classify' / 'accumulated' / f'{img_id}.npz').unlink()
    # a finished stage whose recorded file vanished fails its checksum check; re-record the
    # manifest to test what the export itself does with an image that has no maps
    from wsss_core.pipeline.manifest import read_manifest, write_manifest
    write_manifest(tmp_path / 'classify', read_manifest(tmp_path / 'classify'))
    with pytest.raises(DataFileError, match=img_id):
        run(pipeline_cfg(), tmp_path)
    res = run(pipeline_cfg(missing='zeros'), tmp_path)
    assert res['classify'].status == 'skipped'
    n = len(gt_classes()[img_id])
    assert res['attention'].manifest['counts']['zero_filled_maps'] == n
    cams, _ = load_cam(tmp_path / 'attention' / 'cams' / f'{img_id}.npz')
    assert cams.shape[0] == n and not cams.any()


def test_two_shards_export_what_one_process_exports(finished, tmp_path, monkeypatch):
    """``WSSS_SHARD=0/2`` then ``1/2``: each process exports its half of the images; the
    merged manifest has the single run's counts and the files hold the same maps."""
    from wsss_core.io import load_cam
    from wsss_core.pipeline import read_manifest
    cfg, work_dir, res = finished
    shutil.copytree(work_dir / 'classify', tmp_path / 'classify')
    cfg = dict(cfg, stages=cfg['stages'][:2])        # train (finished) -> export
    statuses = []
    for index in (0, 1):
        monkeypatch.setenv('WSSS_SHARD', f'{index}/2')
        statuses.append(run(cfg, tmp_path)['attention'].status)
    assert statuses == ['shard done', 'resumed']
    merged = read_manifest(tmp_path / 'attention')
    assert merged['shards'] == 2
    assert merged['counts'] == dict(images=16, computed=16, reused=0, zero_filled_maps=0)
    assert merged['artifacts'] == res['attention'].manifest['artifacts']
    want = sorted((work_dir / 'attention' / 'cams').glob('*.npz'))
    got = sorted((tmp_path / 'attention' / 'cams').glob('*.npz'))
    assert len(want) == 16 and [p.name for p in got] == [p.name for p in want]
    for a, b in zip(got, want):
        (cams, ids), (want_cams, want_ids) = load_cam(a), load_cam(b)
        assert np.array_equal(cams, want_cams) and np.array_equal(ids, want_ids), a.name


# ----------------------------------------------------------------------------- resume
_CRASH = {'armed': False, 'epoch': 2, 'iter': 1, 'dropped': 0, 'iters': 0}


def _register_crash_hook():
    from mmengine.hooks import Hook
    from wsss_core.registry import HOOKS
    if HOOKS.get('_OAATestCrash') is not None:
        return

    @HOOKS.register_module(name='_OAATestCrash')
    class Crash(Hook):
        priority = 'LOWEST'   # after the accumulation hook added the drop mask

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            _CRASH['iters'] += 1
            _CRASH['dropped'] += int((data_batch['drop_mask'].flatten(1).sum(1) > 0).sum())
            if _CRASH['armed'] and (runner.epoch, batch_idx) == (_CRASH['epoch'], _CRASH['iter']):
                raise KeyboardInterrupt('simulated crash')


def _final_store_state(work_dir):
    from wsss_core import compat
    with compat.allow_mmengine_checkpoints():
        ckpt = torch.load(work_dir / 'classify' / 'epoch_4.pth', weights_only=True)
    return ckpt['oaa_store']


def _assert_same_state(a, b):
    """Two store state dicts hold the same keys and bit-identical float32 / uint8 maps."""
    for table in ('acc', 'acc_last', 'fill', 'current'):
        assert a[table]['img_ids'] == b[table]['img_ids'], table
        for field in ('classes', 'shapes', 'data'):
            assert torch.equal(a[table][field], b[table][field]), (table, field)
    assert torch.equal(a['current']['epochs'], b['current']['epochs'])
    assert torch.equal(a['accepted'], b['accepted'])


def _accumulated(work_dir):
    from wsss_core.io import load_cam
    acc_dir = work_dir / 'classify' / 'accumulated'
    return {p.stem: load_cam(p) for p in sorted(acc_dir.glob('*.npz'))}, json.loads(
        (acc_dir / 'summary.json').read_text())


def test_store_after_an_interrupted_and_resumed_run_equals_the_uninterrupted_one(tmp_path,
                                                                                 registered):
    _register_crash_hook()
    hook = dict(type='OAAAccumulationHook', drop=dict(prob=0.5, threshold=0.6))
    cfg = dict(seed=0, data=dict(DATA), stages=[
        train_stage(max_epochs=4, hook=hook, extra_hooks=[dict(type='_OAATestCrash')])])
    _CRASH.update(armed=False, dropped=0)
    run(cfg, tmp_path / 'straight')
    assert _CRASH['dropped'] > 0                                  # attention drop did happen
    _CRASH.update(armed=True)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / 'resumed')
    assert not (tmp_path / 'resumed' / 'classify' / 'accumulated').exists()
    assert (tmp_path / 'resumed' / 'classify' / 'epoch_2.pth').is_file()
    _CRASH.update(armed=False, iters=0)
    res = run(cfg, tmp_path / 'resumed', resume=True)
    assert res['classify'].status == 'resumed'
    assert _CRASH['iters'] == 8                       # epochs 2 and 3 only: really resumed
    straight, straight_summary = _accumulated(tmp_path / 'straight')
    resumed, resumed_summary = _accumulated(tmp_path / 'resumed')
    assert resumed_summary == straight_summary
    assert straight_summary['epochs_accumulated'] == [1, 2, 3]
    assert sorted(resumed) == sorted(straight) and len(straight) == 16
    for img_id, (maps, ids) in straight.items():
        assert np.array_equal(resumed[img_id][1], ids)
        assert np.array_equal(resumed[img_id][0], maps), img_id
    straight_state = _final_store_state(tmp_path / 'straight')      # float32, before export
    assert len(straight_state['current']['img_ids']) > 0 and len(straight_state['acc']['img_ids'])
    _assert_same_state(_final_store_state(tmp_path / 'resumed'), straight_state)


# ----------------------------------------------------------------------------- typed artifact
def test_hook_publishes_accumulated_maps_as_its_stages_artifact(finished):
    """The training stage's manifest records the accumulated maps as a declared artifact
    (a CAM set at CAM resolution) next to its trained model."""
    _, work_dir, results = finished
    art = results['classify'].manifest['artifacts']
    assert art['kinds'] == ['trained_model', 'feature_cams']
    assert art['accumulated'] == 'accumulated' and art['split'] == 'train'
    assert art['num_classes'] == len(art['class_names'])


def test_export_from_a_stage_without_the_hook_is_refused_when_built(tmp_path, registered):
    from wsss_core.pipeline import Pipeline
    from wsss_core.pipeline.stage import StageError
    cfg = pipeline_cfg()
    cfg['stages'][0]['custom_hooks'] = []
    with pytest.raises(StageError, match=r"stage 'attention' \(ExportAttention\) reads "
                                         r"source='classify' as a set of maps at CAM "
                                         r"resolution.*stage 'classify' \(TrainClassifier\) "
                                         r'produces a trained model'):
        Pipeline(Config(cfg), tmp_path)
