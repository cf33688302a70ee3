"""NSROM's training stages under ``torchrun --nproc_per_node=2`` (gloo, CPU), in one launch:
the NSROM classifier (GloRe head, accumulation with NSROM's score filter) and the OA-CAM
integral model on its merged accumulated maps.  Each trains under DDP, both ranks step on
disjoint halves of every epoch, and the averaged gradients leave the same weights on both."""
from __future__ import annotations

from wsss_core.pipeline import read_manifest
from wsss_core.testing.distributed import epoch_ids, read_rank_records, run_torchrun
from wsss_nsrom.testing import TINY_GENERATOR, registered  # noqa: F401 (fixture)

DATA = dict(type='SyntheticShapes', generator=dict(TINY_GENERATOR), progress=False)
HEAD = dict(backbone=dict(type='SmallResNet', widths=(8, 8, 16, 16)), head_channels=8,
            num_nodes=4)


def config() -> dict:
    return dict(seed=0, data=dict(DATA), stages=[
        dict(type='TrainClassifier', name='classify', max_epochs=2, batch_size=4,
             val_split=None, log_interval=100, model=dict(type='NSROMClassifier', **HEAD),
             pipeline=[dict(type='PackInputs', keys=('img', 'labels'))],
             custom_hooks=[dict(type='OAAAccumulationHook', filter=None, score_filter=0.1),
                           dict(type='RecordRanks')]),
        dict(type='TrainIntegralAttention', name='oacam', targets='classify', max_epochs=1,
             batch_size=4, log_interval=100, model=dict(type='OACAMModel', **HEAD),
             custom_hooks=[dict(type='RecordRanks')]),
    ])


def test_nsrom_training_stages_under_torchrun_step_both_ranks_on_disjoint_halves(
        tmp_path, registered):  # noqa: F811
    from wsss_core.datasets import build_dataset
    all_ids = set(build_dataset(DATA, split='train', load_gt=False).img_ids)  # generated once
    work_dir = run_torchrun(config(), tmp_path)
    for stage, epochs in (('classify', 2), ('oacam', 1)):
        ranks = read_rank_records(work_dir / stage)
        assert [(r['rank'], r['world'], r['wrapper']) for r in ranks] == \
            [(0, 2, 'DeviceAwareDDP'), (1, 2, 'DeviceAwareDDP')], stage
        assert ranks[0]['norm_layers'] == ['BatchNorm2d'], stage       # the GloRe unit's BN
        assert [len(r['steps']) for r in ranks] == [2 * epochs] * 2, stage   # 8 images / 4
        for epoch in range(epochs):
            mine, theirs = (epoch_ids(r)[epoch] for r in ranks)
            assert len(mine) == len(theirs) == 8, (stage, epoch)
            assert not set(mine) & set(theirs) and set(mine) | set(theirs) == all_ids
        assert ranks[0]['end_digest'] == ranks[1]['end_digest'] != ranks[0]['start_digest']
    # the merged store covers the images of both ranks: OA-CAM found a target for each
    assert len(list((work_dir / 'classify' / 'accumulated').glob('*.npz'))) == len(all_ids)
    assert read_manifest(work_dir / 'oacam')['counts']['target_files'] == len(all_ids)
