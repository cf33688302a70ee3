"""End to end on tiny SyntheticShapes: CAM pseudo labels -> TrainSegmentor -> TestSegmentor.

The pipeline: a tiny CAM classifier, CAMs, pseudo labels (core stages), then the DeepLab
stages (tiny DeepLabV2 with the reference strides and MSC), prediction of the val split with
flip TTA and the dense CRF, and the mIoU JSON.  No accuracy is asserted (a few iterations
on 16 images); the plumbing, the formats and the numbers' consistency are.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from wsss_deeplab.testing import (TINY_BACKBONE, registered,  # noqa: F401 (fixture)
                                  tiny_segmentation_pipeline)


def pipeline_cfg(max_iters: int = 4) -> dict:
    return tiny_segmentation_pipeline(
        segmentor=dict(max_iters=max_iters, batch_size=4, iter_size=2, crop_size=41,
                       lr_interval=2, log_interval=1, checkpoint_interval=2),
        test=dict(scales=(1.0, 0.75), flip=True, crf=dict(type='DenseCRF', preset='deeplab')))


def run(cfg, work_dir, **kw):
    from wsss_core.pipeline import Pipeline
    return {r.name: r for r in Pipeline(Config(cfg), work_dir, progress=False, **kw).run()}


@pytest.fixture(scope='module')
def finished(tmp_path_factory, registered):
    work_dir = tmp_path_factory.mktemp('deeplab_pipeline')
    cfg = pipeline_cfg()
    return cfg, work_dir, run(cfg, work_dir)


def test_train_stage_records_model_weights_and_init(finished):
    _, work_dir, res = finished
    manifest = res['deeplab'].manifest
    art = manifest['artifacts']
    assert (work_dir / 'deeplab' / art['weights']).is_file()
    assert art['model']['type'] == 'DeepLabV2' and art['model']['num_classes'] == 4
    assert art['trained_on'] == 'labels' and art['split'] == 'train'
    counts = manifest['counts']
    assert counts['train_images'] == 16
    assert counts['iterations'] == 4 and counts['batches'] == 8  # updates x iter_size 2
    assert np.isfinite(manifest['metrics']['final_loss'])
    assert (work_dir / 'deeplab' / 'iter_8.pth').is_file()


def test_test_stage_writes_palettised_predictions_logits_and_miou(finished):
    _, work_dir, res = finished
    manifest = res['test'].manifest
    art = manifest['artifacts']
    assert art['predictions'] == 'predictions' and art['split'] == 'val'
    assert art['crf']['preset'] == 'deeplab' and art['crf']['image'] == 'raw_rgb'
    assert art['crf']['params']['bilat_sxy'] == 67
    pngs = sorted((work_dir / 'test' / 'predictions').glob('*.png'))
    raw = sorted((work_dir / 'test' / 'predictions_raw').glob('*.png'))
    assert len(pngs) == len(raw) == 8
    with Image.open(pngs[0]) as im:
        assert im.mode == 'P' and im.size == (48, 48)
        assert im.getpalette()[3:6] == [128, 0, 0]   # VOC colour of class 1: palette written
        assert np.asarray(im).max() <= 3
    logits = np.load(work_dir / 'test' / 'logits' / f'{pngs[0].stem}.npz')
    assert logits['logits'].shape[0] == 4 and tuple(logits['image_size']) == (48, 48)
    assert manifest['counts'] == dict(images=8, computed=8, reused=0, evaluated=8)


def test_miou_json_agrees_with_a_direct_confusion_matrix(finished):
    from wsss_core.datasets import build_dataset
    from wsss_core.evaluation.confusion import ConfusionMatrix
    from wsss_core.evaluation.miou_conventions import frequency_weighted_iou, mean_iou
    from wsss_core.io import read_label_png
    cfg, work_dir, res = finished
    scores = json.loads((work_dir / 'test' / 'miou.json').read_text())
    assert set(scores) == {'raw', 'crf', 'split', 'crf_settings', 'tta', 'miou_convention'}
    assert scores['miou_convention'] == 'union'     # no recipe: the default
    assert scores['crf_settings']['preset'] == 'deeplab'
    dataset = build_dataset(cfg['data'], split='val')
    for folder, key in (('predictions', 'crf'), ('predictions_raw', 'raw')):
        conf = ConfusionMatrix(4)
        for index in range(len(dataset)):
            sample = dataset.load_sample(index)
            pred = read_label_png(work_dir / 'test' / folder / f"{sample['img_id']}.png")
            conf.update(pred, sample['gt_seg'])
        assert scores[key]['miou'] == pytest.approx(conf.miou())
        assert scores[key]['miou_convention'] == 'union'
        for name in ('union', 'gt_present', 'all_classes'):
            assert scores[key]['miou_by_convention'][name] == pytest.approx(
                mean_iou(conf.matrix, name))
        assert scores[key]['fw_iou'] == pytest.approx(frequency_weighted_iou(conf.matrix))
        assert set(scores[key]['iou']) == {'background', *dataset.class_names}
    metrics = res['test'].manifest['metrics']
    assert metrics['miou'] == pytest.approx(scores['crf']['miou'])
    assert metrics['miou_convention'] == 'union'
    assert metrics['miou_by_convention'] == scores['crf']['miou_by_convention']
    assert metrics['fw_iou'] == scores['crf']['fw_iou']


def test_second_run_skips_and_interrupted_test_stage_resumes(finished):
    cfg, work_dir, _ = finished
    again = run(cfg, work_dir)
    assert {r.status for r in again.values()} == {'skipped'}
    test_dir = work_dir / 'test'
    before = json.loads((test_dir / 'miou.json').read_text())
    (test_dir / 'manifest.json').unlink()  # as if it had stopped before finishing
    for png in sorted((test_dir / 'predictions').glob('*.png'))[:3]:
        png.unlink()
    (sorted((test_dir / 'logits').glob('*.npz'))[0]).unlink()
    res = run(cfg, work_dir)['test']
    assert res.status == 'resumed'
    assert res.manifest['counts']['computed'] == 1
    after = json.loads((test_dir / 'miou.json').read_text())
    assert after['crf']['miou'] == pytest.approx(before['crf']['miou'])
    assert after['raw']['miou'] == pytest.approx(before['raw']['miou'])


# ----------------------------------------------------------------------------- edge cases
def _register_ignored_labels_stage():
    """A stand-in pseudo-label stage whose labels ignore every pixel (the NaN trap)."""
    from wsss_core.datasets import build_dataset
    from wsss_core.io import save_label_png
    from wsss_core.pipeline.artifacts import LABEL_SET
    from wsss_core.pipeline.stage import Stage
    from wsss_core.registry import STAGES

    if STAGES.get('_DeepLabTestIgnoredLabels') is not None:
        return

    @STAGES.register_module(name='_DeepLabTestIgnoredLabels')
    class IgnoredLabels(Stage):
        produces = (LABEL_SET,)

        def run(self, ctx):
            data = build_dataset(ctx.data_cfg, split='train', load_gt=False)
            for rec in data.records:
                save_label_png(ctx.stage_dir / 'labels' / f'{rec.img_id}.png',
                               np.full((48, 48), 255, np.uint8))
            return dict(artifacts=dict(labels='labels', split='train'))


def test_training_on_all_ignored_labels_stays_finite_and_counts(tmp_path, registered):
    _register_ignored_labels_stage()
    cfg = dict(seed=0, data=pipeline_cfg()['data'], stages=[
        dict(type='_DeepLabTestIgnoredLabels', name='ignored'),
        dict(type='TrainSegmentor', name='deeplab', labels='ignored', max_iters=3, batch_size=4,
             crop_size=41, log_interval=1, model=dict(type='DeepLabV2',
                                                      backbone=dict(TINY_BACKBONE)))])
    manifest = run(cfg, tmp_path)['deeplab'].manifest
    assert manifest['metrics']['final_loss'] == 0.0
    assert manifest['counts']['ignored_batches'] == 3


def test_training_on_ground_truth(tmp_path, registered):
    cfg = dict(seed=0, data=pipeline_cfg()['data'], stages=[
        dict(type='TrainSegmentor', name='deeplab', max_iters=2, batch_size=4, crop_size=41,
             model=dict(type='DeepLabV3Plus', aspp_channels=8, decoder_channels=8,
                        backbone=dict(TINY_BACKBONE, output_stride=16))),
        dict(type='TestSegmentor', name='test', checkpoint='deeplab', split='val', max_samples=2)])
    res = run(cfg, tmp_path)
    assert res['deeplab'].manifest['artifacts']['trained_on'] == 'ground_truth'
    assert res['deeplab'].manifest['counts']['ignored_batches'] == 0
    assert res['test'].manifest['counts']['evaluated'] == 2
    assert 'miou_crf' not in res['test'].manifest['metrics']
    assert not (tmp_path / 'test' / 'predictions_raw').exists()


def test_labels_stage_without_labels_artifact_is_refused(tmp_path, registered):
    """labels= naming a CAM stage: refused when the pipeline is built, before any work."""
    from wsss_core.pipeline.stage import StageError
    cfg = dict(seed=0, data=pipeline_cfg()['data'], stages=pipeline_cfg()['stages'][:2] + [
        dict(type='TrainSegmentor', name='deeplab', labels='cams', max_iters=1,
             model=dict(type='DeepLabV2', backbone=dict(TINY_BACKBONE)))])
    with pytest.raises(StageError, match=r"stage 'deeplab' \(TrainSegmentor\) reads "
                                         r"labels='cams' as a label set.*stage 'cams' "
                                         r'\(MakeCAMs\) produces a CAM set'):
        run(cfg, tmp_path)
    assert not (tmp_path / 'classify').exists()


_INTERRUPT = {'after': None, 'iters': 0}


def _register_interrupt_hook():
    from mmengine.hooks import Hook
    from wsss_core.registry import HOOKS
    if HOOKS.get('_DeepLabTestInterrupt') is not None:
        return

    @HOOKS.register_module(name='_DeepLabTestInterrupt')
    class Interrupt(Hook):
        priority = 'LOWEST'  # after the checkpoint hook saved the iteration

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            _INTERRUPT['iters'] += 1
            if _INTERRUPT['after'] == runner.iter + 1:
                raise KeyboardInterrupt('simulated crash')


def test_interrupted_training_resumes_with_its_schedule(tmp_path, registered):
    _register_interrupt_hook()
    cfg = dict(seed=0, data=pipeline_cfg()['data'], stages=[
        dict(type='TrainSegmentor', name='deeplab', max_iters=2, iter_size=2, lr_interval=1,
             batch_size=2, crop_size=41, checkpoint_interval=1,
             custom_hooks=[dict(type='_DeepLabTestInterrupt')],
             model=dict(type='DeepLabV2', backbone=dict(TINY_BACKBONE)))])
    _INTERRUPT.update(after=2, iters=0)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path)
    assert (tmp_path / 'deeplab' / 'iter_2.pth').is_file()
    _INTERRUPT.update(after=None, iters=0)
    res = run(cfg, tmp_path, resume=True)['deeplab']   # optimizer + SteppedPolyLR state load
    assert res.status == 'resumed' and _INTERRUPT['iters'] == 2
    assert (tmp_path / 'deeplab' / 'iter_4.pth').is_file()
