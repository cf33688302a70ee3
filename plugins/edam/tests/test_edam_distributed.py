"""EDAM's TrainPairClassifier under ``torchrun --nproc_per_node=2`` (gloo, CPU): the
PairEpochSampler shards the pair list across the ranks (rank r takes pairs r, r + 2, ...), so
in every epoch each pair of the list is trained by exactly one rank, every pair shares a
class, and both ranks step under DDP to the same weights."""
from __future__ import annotations

from collections import Counter

from wsss_core.testing.distributed import read_rank_records, run_torchrun
from wsss_edam.testing import TINY_GENERATOR, registered  # noqa: F401 (fixture)

DATA = dict(type='SyntheticShapes', generator=dict(TINY_GENERATOR), progress=False)
EPOCHS, PAIRS_PER_BATCH = 2, 2


def config() -> dict:
    return dict(seed=0, data=dict(DATA), stages=[
        dict(type='TrainPairClassifier', name='classify', max_epochs=EPOCHS,
             batch_size=PAIRS_PER_BATCH, passes=1, val_split=None, log_interval=100,
             model=dict(type='EDAMClassifier',
                        backbone=dict(type='SmallResNet', widths=(8, 8, 16, 16)),
                        cma=dict(embed_dims=16, num_heads=2, ffn_dims=32)),
             custom_hooks=[dict(type='RecordRanks', batch_keys=('labels',))]),
    ])


def pairs_of(step: dict) -> list:
    """The (id_a, id_b) pairs of one 2P-image batch (rows 2p and 2p + 1), with their labels."""
    ids, labels = step['img_id'], step['labels']
    return [((ids[k], ids[k + 1]), labels[k], labels[k + 1]) for k in range(0, len(ids), 2)]


def test_pair_classifier_under_torchrun_shards_every_pair_to_exactly_one_rank(
        tmp_path, registered):  # noqa: F811
    from wsss_core.datasets import build_dataset
    build_dataset(DATA, split='train', load_gt=False)      # generated once, for both ranks
    work_dir = run_torchrun(config(), tmp_path)
    listed = [tuple(line.split()[:2]) for line in
              (work_dir / 'classify' / 'pairs.txt').read_text().splitlines()]
    n = TINY_GENERATOR['num_train']
    assert len(listed) == n and len(listed) % 2 == 0      # one pair per image: no padding
    ranks = read_rank_records(work_dir / 'classify')
    assert [(r['rank'], r['world'], r['wrapper']) for r in ranks] == \
        [(0, 2, 'DeviceAwareDDP'), (1, 2, 'DeviceAwareDDP')]
    steps_per_epoch = n // 2 // PAIRS_PER_BATCH                # 8 pairs per rank, 2 a batch
    assert [len(r['steps']) for r in ranks] == [EPOCHS * steps_per_epoch] * 2
    for epoch in range(EPOCHS):
        walked = []
        for r in ranks:
            mine = [p for s in r['steps'] if s['epoch'] == epoch for p in pairs_of(s)]
            assert [p for p, _, _ in mine] == listed[r['rank']::2], (epoch, r['rank'])
            for pair, y_a, y_b in mine:                       # the rows of a pair share a class
                assert (y_a * y_b).sum() >= 1, pair
            walked += [p for p, _, _ in mine]
        assert Counter(walked) == Counter(listed), epoch      # each pair by exactly one rank
    assert ranks[0]['end_digest'] == ranks[1]['end_digest'] != ranks[0]['start_digest']
