"""The two-round NSROM pipeline as one config, end to end on tiny generated data: round 2
trains on the masked labels that round 1's training-set predictions produced."""
from __future__ import annotations

import numpy as np
import pytest
from mmengine.config import Config

from wsss_nsrom.testing import TINY_GENERATOR, registered  # noqa: F401 (fixture)

SMALL = dict(type='SmallResNet', widths=(8, 8, 16, 16))


def two_round_cfg() -> dict:
    seg = dict(max_iters=3, batch_size=4, crop_size=48, log_interval=1, checkpoint_interval=3,
               model=dict(type='DeepLabV2', backbone=dict(SMALL), rates=(1, 2, 3, 4)))
    head = dict(backbone=dict(SMALL), head_channels=8, num_nodes=4)
    return dict(
        seed=0,
        data=dict(type='SyntheticShapes', generator=dict(TINY_GENERATOR), progress=False),
        stages=[
            dict(type='TrainClassifier', name='classify', max_epochs=2, batch_size=8,
                 val_split=None, model=dict(type='NSROMClassifier', **head),
                 pipeline=[dict(type='PackInputs', keys=('img', 'labels'))],
                 custom_hooks=[dict(type='OAAAccumulationHook', filter=None,
                                    score_filter=0.1)]),
            dict(type='MakeCAMs', name='cams', source='classify', scales=(1.0,), flip=False),
            dict(type='TrainIntegralAttention', name='oacam', targets='classify', max_epochs=1,
                 batch_size=8, model=dict(type='OACAMModel', **head)),
            dict(type='MakeCAMs', name='oacams', source='oacam', scales=(1.0,), flip=False),
            dict(type='RefineLabels', name='labels', cams='oacams',
                 extra_cams=dict(plain_cams='cams'),
                 refiners=[dict(type='OAAProxyLabels', min_fg_ratio=0.0),
                           dict(type='PotentialObjectMining', cams_key='plain_cams',
                                min_fg_ratio=0.0)]),
            dict(type='TrainSegmentor', name='deeplab1', labels='labels', **seg),
            dict(type='TestSegmentor', name='predict_train', checkpoint='deeplab1',
                 split='train', crf=dict(type='DenseCRF', preset='deeplab')),
            dict(type='MaskNonSalientRegions', name='masked', predictions='predict_train',
                 labels='labels', dilation=5, min_fg_ratio=0.0),
            dict(type='EvaluateLabels', name='eval_masked', labels='masked'),
            dict(type='TrainSegmentor', name='deeplab2', labels='masked', **seg),
            dict(type='TestSegmentor', name='test', checkpoint='deeplab2', split='val'),
        ])


@pytest.fixture(scope='module')
def finished(tmp_path_factory, registered):
    from wsss_core.pipeline import Pipeline
    work_dir = tmp_path_factory.mktemp('nsrom_two_rounds')
    results = Pipeline(Config(two_round_cfg()), work_dir, progress=False).run()
    return work_dir, {r.name: r for r in results}


def test_round_two_trains_on_the_masked_labels_of_round_one(finished):
    work_dir, res = finished
    assert res['deeplab1'].manifest['artifacts']['trained_on'] == 'labels'
    assert res['deeplab2'].manifest['artifacts']['trained_on'] == 'masked'
    assert res['masked'].manifest['artifacts']['split'] == 'train'
    assert res['test'].manifest['counts']['evaluated'] == TINY_GENERATOR['num_val']


def test_masked_labels_come_from_round_one_predictions_by_the_nsrm_rule(finished):
    from wsss_core.datasets import build_dataset
    from wsss_core.io import read_label_png
    from wsss_nsrom.stages.mask_non_salient import non_salient_region_mask
    work_dir, res = finished
    data = build_dataset(two_round_cfg()['data'], split='train', load_gt=False)
    pred_dir = work_dir / 'predict_train' / 'predictions'
    for index in range(len(data)):
        sample = data.load_sample(index)
        img_id = sample['img_id']
        pred = read_label_png(pred_dir / f'{img_id}.png')
        pseudo = read_label_png(work_dir / 'labels' / 'labels' / f'{img_id}.png')
        expected = non_salient_region_mask(pred, pseudo, sample['saliency'],
                                           int(sample['labels'].sum()), dilation=5,
                                           min_fg_ratio=0.0)
        masked = read_label_png(work_dir / 'masked' / 'labels' / f'{img_id}.png')
        assert np.array_equal(masked, expected), img_id


def test_both_rounds_start_from_the_same_initial_weights(finished, tmp_path):
    """Round 2 is not fine-tuned from round 1: the same recipe and seed build the same
    initial network, whatever the global RNG state in between."""
    import torch
    from wsss_core.pipeline import Pipeline
    from wsss_core.pipeline.stage import StageContext
    work_dir, res = finished
    a, b = res['deeplab1'].manifest['artifacts'], res['deeplab2'].manifest['artifacts']
    assert a['model'] == b['model'] and a.get('init') == b.get('init')
    cfg = Config(two_round_cfg())
    stages = {s.name: s for s in Pipeline(cfg, tmp_path, progress=False).stages}
    ctx = StageContext(cfg=cfg, work_dir=tmp_path, stage_dir=tmp_path, seed=0)
    first = stages['deeplab1'].build_model(ctx, a['model']).state_dict()
    torch.rand(1000)                                     # move the global RNG on
    second = stages['deeplab2'].build_model(ctx, b['model']).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
