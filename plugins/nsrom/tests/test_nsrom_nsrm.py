"""NSROM's non-salient region masking (``docs/methods/nsrom.md#38-non-salient-region-masking``)
on crafted maps, and the MaskNonSalientRegions stage end to end on tiny data (round-1 DeepLab
predicting the train split), with resume and the input checks."""
from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from wsss_core.testing import tiny_classify_stage
from wsss_nsrom.testing import TINY_GENERATOR, registered  # noqa: F401 (fixture)


def nsrm(*args, **kw):
    from wsss_nsrom.stages.mask_non_salient import non_salient_region_mask
    return non_salient_region_mask(*args, **kw)


def zeros(h=80, w=80):
    return np.zeros((h, w), np.uint8)


# ----------------------------------------------------------------------------- the rule
def test_single_class_images_keep_the_prediction():
    pred, pseudo, sal = zeros(), zeros(), zeros()
    pred[10:30, 10:30] = 2
    pseudo[50:70, 50:70] = 2          # would fill, and the far corner would be masked...
    out = nsrm(pred, pseudo, sal, num_gt_classes=1)
    np.testing.assert_array_equal(out, pred)   # ...but one class: untouched
    assert out is not pred and out.dtype == np.uint8


def test_pseudo_foreground_fills_predicted_background_only():
    # 6 x 6: the 30 x 30 dilation of any support covers the image, so nothing is masked
    pred = np.array([[0, 0, 1, 1, 0, 0]] * 6, np.uint8)
    pseudo = np.array([[2, 255, 2, 3, 0, 3]] * 6, np.uint8)
    out = nsrm(pred, pseudo, zeros(6, 6), num_gt_classes=2)
    # col 0: bg <- 2; col 1: pseudo ignore, stays 0; cols 2-3: predicted 1 wins over the
    # pseudo labels; col 4: pseudo background, stays 0; col 5: bg <- 3
    np.testing.assert_array_equal(out, np.array([[2, 0, 1, 1, 0, 3]] * 6, np.uint8))


def support_box(y, x, k=30, size=80):
    """Where OpenCV's k x k dilation (anchor k // 2) of the single pixel (y, x) reaches."""
    box = np.zeros((size, size), bool)
    lo, hi = k - 1 - k // 2, k // 2       # 30: 14 before, 15 after
    box[max(0, y - lo):y + hi + 1, max(0, x - lo):x + hi + 1] = True
    return box


def test_dilation_reaches_14_before_and_15_after_a_predicted_pixel():
    pred = zeros()
    pred[40, 40] = 1
    out = nsrm(pred, zeros(), zeros(), num_gt_classes=2, min_fg_ratio=0.0)
    expected = np.where(support_box(40, 40), 0, 255).astype(np.uint8)
    expected[40, 40] = 1
    np.testing.assert_array_equal(out, expected)
    # just inside / just outside, on each side (rows 26..55, columns 26..55 kept)
    for inside, outside in (((26, 40), (25, 40)), ((55, 40), (56, 40)),
                            ((40, 26), (40, 25)), ((40, 55), (40, 56))):
        assert out[inside] == 0 and out[outside] == 255, (inside, outside)
    assert out[26, 26] == 0 and out[55, 55] == 0 and out[25, 25] == 255


@pytest.mark.parametrize('k', [4, 5, 1])
def test_other_kernel_sizes_follow_the_same_anchor_rule(k):
    pred = zeros()
    pred[40, 40] = 1
    out = nsrm(pred, zeros(), zeros(), num_gt_classes=3, dilation=k, min_fg_ratio=0.0)
    np.testing.assert_array_equal(out != 255, support_box(40, 40, k))


def test_the_image_border_adds_no_support():
    pred = zeros()
    pred[0, 0] = 1
    out = nsrm(pred, zeros(), zeros(), num_gt_classes=2, min_fg_ratio=0.0)
    assert (out != 255).sum() == 16 * 16          # rows / columns 0..15
    np.testing.assert_array_equal(out != 255, support_box(0, 0))


def test_any_nonzero_saliency_far_from_objects_keeps_its_neighbourhood():
    pred, sal = zeros(), zeros()
    pred[40:60, 40:60] = 1
    sal[5, 70] = 1                                 # faint, far from the object
    out = nsrm(pred, zeros(), sal, num_gt_classes=2)
    obj = np.zeros((80, 80), bool)
    for y in (40, 59):
        for x in (40, 59):
            obj |= support_box(y, x)
    keep = obj | support_box(5, 70)
    assert keep[5, 70] and not obj[5, 70]
    np.testing.assert_array_equal(out[keep & (pred == 0)], 0)
    np.testing.assert_array_equal(out[~keep], 255)
    assert out[0, 79] == 0 and out[20, 79] == 0 and out[21, 79] == 255 and out[5, 55] == 255
    # without that pixel its neighbourhood is ignored
    assert nsrm(pred, zeros(), zeros(), num_gt_classes=2)[5, 70] == 255


def test_images_with_under_one_percent_foreground_are_ignored_entirely():
    pred = zeros(10, 10)
    pred[0, 0] = 1                                 # exactly 1 %: kept, both kinds of image
    for n in (1, 2):
        np.testing.assert_array_equal(nsrm(pred, zeros(10, 10), zeros(10, 10), n), pred)
    small = zeros(20, 10)
    small[0, 0] = 1                                # 0.5 %
    for n in (1, 2):
        assert (nsrm(small, zeros(20, 10), zeros(20, 10), n) == 255).all()
    # the filled pseudo foreground counts
    pseudo = zeros(20, 10)
    pseudo[5, 5] = 3
    out = nsrm(small, pseudo, zeros(20, 10), 2)
    assert out[0, 0] == 1 and out[5, 5] == 3 and (out != 255).all()


def test_rule_checks_shapes_and_dilation():
    with pytest.raises(ValueError, match='one size'):
        nsrm(zeros(4, 4), zeros(4, 5), zeros(4, 4), 2)
    with pytest.raises(ValueError, match='dilation'):
        nsrm(zeros(4, 4), zeros(4, 4), zeros(4, 4), 2, dilation=0)


# ----------------------------------------------------------------------------- the stage
SMALL = dict(type='SmallResNet', widths=(8, 8, 16, 16))
DILATION = 9


def pipeline_cfg() -> dict:
    return dict(
        seed=0,
        data=dict(type='SyntheticShapes', generator=dict(TINY_GENERATOR), progress=False),
        stages=[
            tiny_classify_stage(val_split=None, model=dict(type='CAMClassifier',
                                                           backbone=dict(SMALL))),
            dict(type='MakeCAMs', name='cams', source='classify', scales=(1.0,), flip=False),
            dict(type='RefineLabels', name='labels', cams='cams',
                 extra_cams=dict(plain_cams='cams'),
                 refiners=[dict(type='OAAProxyLabels'), dict(type='PotentialObjectMining')]),
            dict(type='TrainSegmentor', name='deeplab', labels='labels', max_iters=2,
                 batch_size=4, crop_size=48, log_interval=1, checkpoint_interval=2,
                 model=dict(type='DeepLabV2', backbone=dict(SMALL), rates=(1, 2, 3, 4))),
            dict(type='TestSegmentor', name='predict_train', checkpoint='deeplab',
                 split='train', crf=dict(type='DenseCRF', preset='deeplab')),
            dict(type='MaskNonSalientRegions', name='masked', predictions='predict_train',
                 labels='labels', dilation=DILATION),
            dict(type='EvaluateLabels', name='eval_masked', labels='masked'),
        ])


def run(cfg, work_dir, **kw):
    from wsss_core.pipeline import Pipeline
    return {r.name: r for r in Pipeline(Config(cfg), work_dir, progress=False, **kw).run()}


@pytest.fixture(scope='module')
def finished(tmp_path_factory, registered):
    work_dir = tmp_path_factory.mktemp('nsrm_stage')
    return work_dir, run(pipeline_cfg(), work_dir)


def masked_labels(work_dir):
    from wsss_core.io import read_label_png
    folder = work_dir / 'masked' / 'labels'
    return {p.stem: read_label_png(p) for p in sorted(folder.glob('*.png'))}


def test_stage_writes_the_rule_applied_to_each_training_image(finished):
    from wsss_core.datasets import build_dataset
    from wsss_core.io import read_label_png
    work_dir, _ = finished
    data = build_dataset(pipeline_cfg()['data'], split='train', load_gt=False)
    got = masked_labels(work_dir)
    assert sorted(got) == sorted(data.img_ids)
    masked = 0
    for index in range(len(data)):
        sample = data.load_sample(index)
        img_id = sample['img_id']
        pred = read_label_png(work_dir / 'predict_train' / 'predictions' / f'{img_id}.png')
        pseudo = read_label_png(work_dir / 'labels' / 'labels' / f'{img_id}.png')
        n_classes = int(sample['labels'].sum())
        expected = nsrm(pred, pseudo, sample['saliency'], n_classes, dilation=DILATION)
        np.testing.assert_array_equal(got[img_id], expected, err_msg=img_id)
        if n_classes >= 2 and not (expected == 255).all():
            masked += int((expected == 255).sum())
    assert masked, 'NSRM masked no pixel: the end-to-end check checks little'
    with Image.open(work_dir / 'masked' / 'labels' / f'{data.img_ids[0]}.png') as im:
        assert im.mode == 'P' and im.getpalette()[3:6] == [128, 0, 0]


def test_manifest_is_what_evaluate_labels_and_train_segmentor_read(finished):
    from wsss_core.datasets import build_dataset
    work_dir, res = finished
    manifest = res['masked'].manifest
    data = build_dataset(pipeline_cfg()['data'], split='train', load_gt=False)
    assert manifest['artifacts'] == dict(labels='labels', split='train', num_classes=3,
                                         class_names=list(data.class_names),
                                         kinds=['label_set'])
    assert set(manifest['inputs']) == {'predict_train', 'labels'}
    labels = masked_labels(work_dir)
    assert manifest['counts'] == dict(
        images=16, computed=16,
        masked_images=sum(len(r.class_ids) >= 2 for r in data.records),
        ignored_images=sum(bool((a == 255).all()) for a in labels.values()))
    ignored = sum(int((a == 255).sum()) for a in labels.values())
    total = sum(a.size for a in labels.values())
    assert manifest['metrics']['ignored_fraction'] == pytest.approx(ignored / total)
    assert res['eval_masked'].manifest['artifacts']['source'] == 'masked'
    assert 0.0 <= res['eval_masked'].manifest['metrics']['miou'] <= 1.0


def test_rerun_skips_and_an_interrupted_run_resumes(finished):
    work_dir, _ = finished
    assert {r.status for r in run(pipeline_cfg(), work_dir).values()} == {'skipped'}
    stage_dir = work_dir / 'masked'
    before = masked_labels(work_dir)
    (stage_dir / 'manifest.json').unlink()           # stopped after writing every label
    res = run(pipeline_cfg(), work_dir)['masked']
    assert res.status == 'resumed' and res.manifest['counts']['computed'] == 0
    (stage_dir / 'manifest.json').unlink()           # stopped with three labels to go
    for png in sorted((stage_dir / 'labels').glob('*.png'))[:3]:
        png.unlink()
    res = run(pipeline_cfg(), work_dir)['masked']
    assert res.status == 'resumed' and res.manifest['counts']['computed'] == 3
    after = masked_labels(work_dir)
    assert after.keys() == before.keys()
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])


def reuse_finished(finished, tmp_path, stages=('classify', 'cams', 'labels', 'deeplab')):
    work_dir, _ = finished
    for stage in stages:
        shutil.copytree(work_dir / stage, tmp_path / stage)


def test_predictions_of_another_split_are_refused(finished, tmp_path):
    from wsss_core.pipeline.stage import StageError
    reuse_finished(finished, tmp_path)
    cfg = pipeline_cfg()
    cfg['stages'][4:] = [
        dict(type='TestSegmentor', name='predict_val', checkpoint='deeplab', split='val',
             max_samples=2),
        dict(type='MaskNonSalientRegions', name='masked', predictions='predict_val',
             labels='labels')]
    with pytest.raises(StageError, match=r"predictions='predict_val' covered split 'val' but "
                                         r"labels='labels' covers split 'train'"):
        run(cfg, tmp_path)


def test_every_image_needs_a_prediction(finished, tmp_path):
    from wsss_core.pipeline.stage import StageError
    reuse_finished(finished, tmp_path)
    cfg = pipeline_cfg()
    cfg['stages'][4] = dict(cfg['stages'][4], crf=None, max_samples=3)
    with pytest.raises(StageError, match="predictions='predict_train' has no predictions/<id>"
                                         ".png for 13 of the 16 images"):
        run(cfg, tmp_path, only=['predict_train', 'masked'])


def test_a_dataset_without_saliency_is_refused(registered):
    from wsss_core.pipeline.stage import StageError
    from wsss_nsrom.stages.mask_non_salient import MaskNonSalientRegions
    stage = MaskNonSalientRegions('masked', predictions='p', labels='l')
    data = SimpleNamespace(records=[SimpleNamespace(img_id='a', saliency_path=None)])
    with pytest.raises(StageError, match="no saliency maps.*saliency_dir"):
        stage._check(data, None, None, 'train')
    data = SimpleNamespace(records=[SimpleNamespace(img_id='a', saliency_path='a.png',
                                                    has_labels=False)])
    with pytest.raises(StageError, match=r"no image-level labels, e.g. \['a'\]"):
        stage._check(data, None, None, 'train')


def test_stage_options(registered):
    from wsss_core.pipeline.stage import StageError
    from wsss_nsrom.stages.mask_non_salient import MaskNonSalientRegions
    stage = MaskNonSalientRegions('masked', predictions='p', labels='l', workers=2)
    assert stage.options == dict(predictions='p', labels='l', dilation=30, min_fg_ratio=0.01)
    assert stage.inputs() == ['p', 'l'] and stage.workers == 2
    with pytest.raises(StageError, match='dilation'):
        MaskNonSalientRegions('masked', predictions='p', labels='l', dilation=0)
    with pytest.raises(StageError, match='workers'):
        MaskNonSalientRegions('masked', predictions='p', labels='l', workers=-1)


def test_two_shards_mask_what_one_process_masks(finished, tmp_path, monkeypatch):
    """``WSSS_SHARD=1/2`` then ``0/2``: each process masks its half of the images; the one
    that completes the set merges: counts summed, ``ignored_fraction`` over all images from
    the written labels, equal to the single process's."""
    from wsss_core.io import read_json
    from wsss_core.pipeline import read_manifest
    work_dir, res = finished
    reuse_finished(finished, tmp_path, ('classify', 'cams', 'labels', 'deeplab',
                                        'predict_train'))
    cfg = pipeline_cfg()
    cfg['stages'] = cfg['stages'][:6]                 # up to the masking
    statuses = []
    for index in (1, 0):
        monkeypatch.setenv('WSSS_SHARD', f'{index}/2')
        statuses.append(run(cfg, tmp_path)['masked'].status)
    assert statuses == ['shard done', 'resumed']
    assert read_json(tmp_path / 'masked' / 'shards' / '1-of-2.json')['counts']['images'] == 8
    merged, single = read_manifest(tmp_path / 'masked'), res['masked'].manifest
    assert merged['shards'] == 2 and merged['counts'] == single['counts']
    assert merged['metrics'] == single['metrics'] and merged['artifacts'] == single['artifacts']
    got, want = masked_labels(tmp_path), masked_labels(work_dir)
    assert sorted(got) == sorted(want) and len(got) == 16
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
