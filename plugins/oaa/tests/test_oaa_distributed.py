"""OAA under ``torchrun --nproc_per_node=2`` (gloo, CPU), in one launch: TrainClassifier with
the online attention accumulation hook, ExportAttention, and TrainIntegralAttention on the
accumulated maps, each training stage under DDP.

How "the per-rank parts merge into exactly the single-process result" is checked: a test-only
hook makes each rank record every step it trained (image ids, labels, and the step's raw class
attention maps and logits that the accumulation hook read).  From the visits of *both* ranks
the test computes the accumulated maps with its own, naive implementation of the rule for one
process (below): a key's final map is the element-wise max of its accepted max-normalised maps
of epochs ``start_epoch .. E-1``, or, when no epoch before the last accepted it, its
last-epoch map (the fill).  That depends only on which maps were visited, not on which rank
saw them, so the files the main process wrote after the ranks' stores were merged must equal
it bit for bit (float16 as stored); so must the per-epoch counts of accepted maps, and the
exported image-size maps must be those maps through the export's zoom.
"""
from __future__ import annotations

import json

import numpy as np
import torch

from wsss_core.testing.distributed import epoch_ids, read_rank_records, run_torchrun
from wsss_oaa.testing import TINY_BACKBONE, TINY_GENERATOR, registered  # noqa: F401

DATA = dict(type='SyntheticShapes', generator=dict(TINY_GENERATOR), progress=False)
EPOCHS, START = 3, 1


def config() -> dict:
    tiny = dict(backbone=dict(TINY_BACKBONE), head_channels=16)
    return dict(seed=0, data=dict(DATA), stages=[
        dict(type='TrainClassifier', name='classify', max_epochs=EPOCHS, batch_size=4,
             val_split=None, log_interval=100, model=dict(type='OAAClassifier', **tiny),
             pipeline=[dict(type='PackInputs', keys=('img', 'labels'))],
             custom_hooks=[dict(type='OAAAccumulationHook', start_epoch=START, filter='topk'),
                           dict(type='RecordRanks', batch_keys=('labels',),
                                step_maps=True)]),
        dict(type='ExportAttention', name='attention', source='classify'),
        dict(type='TrainIntegralAttention', name='iam', targets='classify', max_epochs=1,
             batch_size=4, log_interval=100, model=dict(type='IntegralAttentionModel', **tiny),
             custom_hooks=[dict(type='RecordRanks')]),
    ])


# ----------------------------------------------------------------------------- the naive rule
def max_normalised(cam: np.ndarray) -> np.ndarray:
    pos = np.maximum(cam.astype(np.float32), np.float32(0))
    return pos / (pos.max() + np.float32(1e-8))


def top_k(logits: np.ndarray, labels: np.ndarray) -> set:
    """The classes among the k highest sigmoid scores, k = number of GT classes (stable)."""
    scores = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    order = sorted(range(len(scores)), key=lambda c: -scores[c])
    return set(order[:int((labels > 0).sum())])


def visits_of(records) -> dict:
    """``{(img_id, class): {epoch: (max-normalised map, accepted)}}`` over both ranks."""
    out: dict = {}
    for record in records:
        for step in record['steps']:
            cam = step['step_maps']['cam'].float().numpy()
            logits = step['step_maps']['logits'].float().numpy()
            labels = step['labels'].numpy()
            for b, img_id in enumerate(step['img_id']):
                accepted = top_k(logits[b], labels[b])
                for c in np.flatnonzero(labels[b] > 0).tolist():
                    per_epoch = out.setdefault((img_id, c), {})
                    assert step['epoch'] not in per_epoch, 'an image visited twice in an epoch'
                    per_epoch[step['epoch']] = (max_normalised(cam[b, c]), c in accepted)
    return out


def single_process_result(visits: dict):
    """Final map per key and accepted maps per epoch, for one process seeing every visit."""
    final, accepted = {}, {}
    for key, per_epoch in visits.items():
        assert sorted(per_epoch) == list(range(EPOCHS)), key
        for epoch in range(START, EPOCHS):
            accepted[epoch] = accepted.get(epoch, 0) + int(per_epoch[epoch][1])
        before = [m for e, (m, ok) in per_epoch.items() if START <= e < EPOCHS - 1 and ok]
        last, last_ok = per_epoch[EPOCHS - 1]
        if not before:                   # nothing before the last epoch: its map fills the key
            final[key] = last
        else:                            # max fusion of the accepted maps
            final[key] = np.maximum.reduce(before + ([last] if last_ok else []))
    return final, accepted


# ----------------------------------------------------------------------------- the run
def test_oaa_stages_under_torchrun_merge_into_the_single_process_result(tmp_path, registered):
    from wsss_core.datasets import build_dataset
    from wsss_core.io import load_cam
    from wsss_core.pipeline import read_manifest
    from wsss_oaa.stages.export_attention import image_size, zoom_attention
    train = build_dataset(DATA, split='train', load_gt=False)   # generated once, for all ranks
    work_dir = run_torchrun(config(), tmp_path)
    all_ids = set(train.img_ids)

    # both training stages: DDP, both ranks stepped, each epoch split between the ranks
    for stage, epochs in (('classify', EPOCHS), ('iam', 1)):
        ranks = read_rank_records(work_dir / stage)
        assert [(r['rank'], r['world'], r['wrapper']) for r in ranks] == \
            [(0, 2, 'DeviceAwareDDP'), (1, 2, 'DeviceAwareDDP')], stage
        assert [len(r['steps']) for r in ranks] == [2 * epochs] * 2, stage   # 8 images / 4
        for epoch in range(epochs):
            mine, theirs = (set(epoch_ids(r)[epoch]) for r in ranks)
            assert len(mine) == len(theirs) == 8 and mine | theirs == all_ids, (stage, epoch)
        # gradients were averaged: the same weights on both ranks, changed by training
        assert ranks[0]['end_digest'] == ranks[1]['end_digest'] != ranks[0]['start_digest']

    # the accumulated maps the main process wrote = the single-process rule on all visits
    final, accepted = single_process_result(visits_of(read_rank_records(work_dir / 'classify')))
    gt = {r.img_id: sorted(r.class_ids) for r in train.records}
    assert {k[0] for k in final} == all_ids and len(final) == sum(map(len, gt.values()))
    acc_dir = work_dir / 'classify' / 'accumulated'
    for img_id, classes in gt.items():
        maps, ids = load_cam(acc_dir / f'{img_id}.npz')
        assert ids.tolist() == classes, img_id
        for m, c in zip(maps, classes):
            expected = final[(img_id, c)].astype(np.float16).astype(np.float32)
            assert np.array_equal(m, expected), (img_id, c)
    summary = json.loads((acc_dir / 'summary.json').read_text())
    assert summary['accepted_per_epoch'] == {str(e): n for e, n in sorted(accepted.items())}
    assert summary['maps'] == len(final) and sum(accepted.values()) > 0

    # ExportAttention: those maps at image size
    for rec in train.records:
        cams, ids = load_cam(work_dir / 'attention' / 'cams' / f'{rec.img_id}.npz')
        stored = np.stack([final[(rec.img_id, c)] for c in ids.tolist()])
        expected = zoom_attention(stored.astype(np.float16).astype(np.float32),
                                  image_size(rec.img_path))
        np.testing.assert_allclose(cams, expected, atol=1e-3)

    # the integral attention model trained on the merged maps of every image
    iam = read_manifest(work_dir / 'iam')
    assert iam['counts']['target_files'] == 16
    assert torch.load(work_dir / 'iam' / 'model.pth', weights_only=True)
