"""Online attention accumulation: the rule on crafted steps (max fusion, top-k filter, first
epoch, last-epoch fill, keys by image id), the 8-bit option, exact merging of per-rank
stores, the state dict under ``weights_only=True`` and the hook's checkpoint round trip."""
from __future__ import annotations

import io
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from wsss_core.models.step_maps import TrainStepOutputs
from wsss_oaa.accumulation import (AttentionStore, OAAAccumulationHook, max_normalise,
                                   to_uint8, topk_accepts)
from wsss_oaa.accumulation.hook import CHECKPOINT_KEY


# ----------------------------------------------------------------------------- helpers
class FakeModel:
    """What the hook needs of a model: the StepMapsModel members and a forward taking
    ``drop_mask`` (the maps themselves come in the train step's outputs)."""

    step_map_keys = ('cam', 'logits')

    def parse_losses(self, losses):  # pragma: no cover
        raise NotImplementedError

    def forward(self, img, labels=None, mode='tensor', drop_mask=None):  # pragma: no cover
        raise NotImplementedError


def fake_runner(max_epochs=4, tmp_path=None):
    import logging
    return SimpleNamespace(model=FakeModel(), epoch=0, max_epochs=max_epochs, seed=0,
                           work_dir=str(tmp_path) if tmp_path else '.', _resume=True,
                           logger=logging.getLogger('test'))


def train_step(hook, runner, epoch, img_ids, labels, cam, logits, size=(8, 8)):
    """One training iteration as the Runner calls the hook (before -> forward -> after)."""
    runner.epoch = epoch
    batch = dict(img_id=list(img_ids), labels=torch.as_tensor(labels, dtype=torch.float32),
                 img=torch.zeros(len(img_ids), 3, *size, dtype=torch.uint8))
    hook.before_train_iter(runner, 0, batch)
    outputs = TrainStepOutputs({}, dict(cam=torch.as_tensor(cam, dtype=torch.float32),
                                        logits=torch.as_tensor(logits, dtype=torch.float32)))
    hook.after_train_iter(runner, 0, batch, outputs)
    return batch


def final(hook_or_store):
    store = getattr(hook_or_store, 'store', hook_or_store)
    return store.final()


def assert_same_maps(a: dict, b: dict):
    assert sorted(a) == sorted(b)
    for key in a:
        assert np.array_equal(a[key], b[key]), key


# ----------------------------------------------------------------------------- the rule
def test_max_normalise_is_relu_over_the_map_maximum():
    cam = torch.tensor([[[[2.0, -1.0], [1.0, 0.5]], [[-3.0, -1.0], [-2.0, -0.1]]]])
    out = max_normalise(cam)
    assert torch.allclose(out[0, 0], torch.tensor([[1.0, 0.0], [0.5, 0.25]]), atol=1e-6)
    assert torch.equal(out[0, 1], torch.zeros(2, 2))   # all negative -> zero map, no NaN


def test_topk_keeps_the_k_most_confident_classes_with_k_the_number_of_gt_classes():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0], [0.0, 5.0, -1.0, 4.0]])
    labels = torch.tensor([[1.0, 0, 0, 1], [0, 0, 0, 1]])          # k = 2 and k = 1
    ok = topk_accepts(logits, labels)
    assert ok.tolist() == [[True, True, False, False], [False, True, False, False]]


def _cam(*maps):
    """(1, C, 2, 2) from C 2x2 maps."""
    return torch.tensor([maps], dtype=torch.float32)


def test_rule_first_epoch_skipped_max_fusion_topk_and_last_epoch_fill():
    hook, runner = OAAAccumulationHook(), fake_runner(max_epochs=4)
    labels = [[1.0, 1.0, 0.0]]                      # GT classes 0 and 1 (k = 2)
    top01 = [[2.0, 1.0, 0.0]]                       # top-2 = {0, 1}: both accepted
    top02 = [[2.0, -1.0, 1.0]]                      # top-2 = {0, 2}: GT class 1 rejected
    z = [[0.0, 0.0], [0.0, 0.0]]
    # epoch 0 never writes
    train_step(hook, runner, 0, ['a'], labels, _cam([[9, 0], [0, 0]], [[0, 9], [0, 0]], z), top01)
    assert len(hook.store) == 0
    # epoch 1: class 0 accepted; class 1 (GT) outside the top-2 -> nothing
    train_step(hook, runner, 1, ['a'], labels, _cam([[4, 0], [2, -1]], [[0, 8], [0, 0]], z), top02)
    got = final(hook)
    assert sorted(got) == [('a', 0)] and np.allclose(got[('a', 0)], [[1.0, 0.0], [0.5, 0.0]])
    # epoch 2: both accepted, element-wise max with the stored map
    train_step(hook, runner, 2, ['a'], labels, _cam([[1, 2], [0, 0]], [[0, 2], [4, 0]], z), top01)
    got = final(hook)
    assert np.allclose(got[('a', 0)], [[1.0, 1.0], [0.5, 0.0]])
    assert np.allclose(got[('a', 1)], [[0.0, 0.5], [1.0, 0.0]])
    # epoch 3 (last): present keys follow the filter (0 accumulated, 1 rejected: no fill);
    # a key missing so far is filled whatever the filter says
    train_step(hook, runner, 3, ['a'], labels, _cam([[0, 0], [0, 8]], [[0, 0], [0, 8]], z), top02)
    train_step(hook, runner, 3, ['b'], [[0.0, 0.0, 1.0]], _cam(z, z, [[0, 0], [2, 1]]),
               [[5.0, 4.0, -2.0]])                  # GT class 2 is not the top-1: filled anyway
    got = final(hook)
    assert np.allclose(got[('a', 0)], [[1.0, 1.0], [0.5, 1.0]])   # accepted: max
    assert np.allclose(got[('a', 1)], [[0.0, 0.5], [1.0, 0.0]])   # present, rejected: kept
    assert np.allclose(got[('b', 2)], [[0.0, 0.0], [1.0, 0.5]])   # missing: filled
    assert sorted(got) == [('a', 0), ('a', 1), ('b', 2)]
    assert hook.store.accepted_per_epoch() == {1: 1, 2: 2, 3: 1}


def test_rule_without_filter_and_without_fill():
    labels, logits = [[0.0, 1.0]], [[2.0, -5.0]]      # GT class 1 is not the top-1
    cam = _cam([[1, 0], [0, 0]], [[0, 1], [0, 0]])
    runner = fake_runner(max_epochs=3)
    unfiltered = OAAAccumulationHook(filter=None, fill_last_epoch=False)
    train_step(unfiltered, runner, 1, ['a'], labels, cam, logits)
    assert sorted(final(unfiltered)) == [('a', 1)]
    no_fill = OAAAccumulationHook(fill_last_epoch=False)
    train_step(no_fill, runner, 2, ['a'], labels, cam, logits)
    assert len(no_fill.store) == 0                    # last epoch, rejected, no fill
    filled = OAAAccumulationHook()
    train_step(filled, runner, 2, ['a'], labels, cam, logits)
    assert sorted(final(filled)) == [('a', 1)]


def test_score_filter_skips_classes_with_low_sigmoid_score():
    hook = OAAAccumulationHook(filter=None, score_filter=0.1)   # NSROM
    runner = fake_runner(max_epochs=5)
    logit_01 = float(np.log(0.1 / 0.9))
    train_step(hook, runner, 1, ['a'], [[1.0, 1.0, 1.0]],
               _cam([[1, 0], [0, 0]], [[2, 0], [0, 0]], [[3, 0], [0, 0]]),
               [[logit_01 - 0.01, logit_01 + 0.01, 5.0]])
    assert sorted(final(hook)) == [('a', 1), ('a', 2)]


def _synthetic_step(img_id: str, epoch: int, num_classes=3, size=4):
    """A deterministic (labels, cam, logits) per image and epoch."""
    seed = (sum(map(ord, img_id)) * 31 + epoch) % 2**31
    g = torch.Generator().manual_seed(seed)
    labels = (torch.rand(num_classes, generator=g) > 0.5).float()
    labels[seed % num_classes] = 1.0
    cam = torch.randn(num_classes, size, size, generator=g)
    logits = torch.randn(num_classes, generator=g)
    return labels, cam, logits


def _run_epochs(hook, runner, img_ids, epochs, order_seed, batch_size=3):
    rng = random.Random(order_seed)
    for epoch in range(epochs):
        ids = list(img_ids)
        rng.shuffle(ids)
        for i in range(0, len(ids), batch_size):
            chunk = ids[i:i + batch_size]
            steps = [_synthetic_step(x, epoch) for x in chunk]
            train_step(hook, runner, epoch, chunk, torch.stack([s[0] for s in steps]),
                       torch.stack([s[1] for s in steps]), torch.stack([s[2] for s in steps]))


def test_store_is_keyed_by_image_id_so_shuffled_batch_orders_give_the_same_store():
    ids = [f'img{i:02d}' for i in range(10)]
    stores = []
    for order_seed in (0, 1, 2):
        hook = OAAAccumulationHook()
        _run_epochs(hook, fake_runner(max_epochs=4), ids, 4, order_seed)
        stores.append(final(hook))
    assert len(stores[0]) > 10
    assert_same_maps(stores[0], stores[1])
    assert_same_maps(stores[0], stores[2])


def test_quantize_keeps_8bit_values_and_fuses_them_by_max():
    store = AttentionStore(quantize=True)
    store.visit(('a', 0), np.array([[1.0, 0.3], [0.5, 0.0]]), True, 1)
    assert store.acc[('a', 0)].dtype == np.uint8
    assert store.acc[('a', 0)].tolist() == [[255, 76], [128, 0]]      # rint(76.5)=76, 127.5->128
    store.visit(('a', 0), np.array([[0.0, 0.301], [0.1, 0.002]]), True, 2)
    assert store.acc[('a', 0)].tolist() == [[255, 77], [128, 1]]
    assert np.allclose(store.final()[('a', 0)], np.array([[255, 77], [128, 1]]) / 255.0)
    assert to_uint8(np.array([1.2, -0.1, 0.998])).tolist() == [255, 0, 254]
    hook = OAAAccumulationHook(quantize=True)
    assert hook.store.quantize


# ----------------------------------------------------------------------------- merging
def test_merge_reproduces_the_single_store_in_the_cases_that_need_the_last_epoch_tables():
    one, two = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    single, rank0, rank1 = AttentionStore(), AttentionStore(rank=0), AttentionStore(rank=1)
    visits = [  # key, map, accepted, epoch, rank
        (('k1', 0), one, True, 1, 0), (('k1', 0), two, False, 2, 1),   # present: rejected
        (('k2', 0), one, True, 1, 0), (('k2', 0), two, True, 2, 1),    # present: accumulated
        (('k3', 0), two * 0.5, False, 1, 0), (('k3', 0), one * 0.4, False, 2, 1),  # fill only
    ]
    for key, amap, ok, epoch, rank in visits:
        last = epoch == 2
        single.visit(key, amap, ok, epoch, last=last)
        (rank0, rank1)[rank].visit(key, amap, ok, epoch, last=last)
    expected = {('k1', 0): one, ('k2', 0): np.array([[1.0, 1.0]]), ('k3', 0): one * 0.4}
    for store in (single, AttentionStore.merged([rank0, rank1]),
                  AttentionStore.merged([rank1, rank0])):
        got = store.final()
        assert sorted(got) == sorted(expected)
        for key in expected:
            assert np.allclose(got[key], expected[key]), key


def _copy(store, rank):
    return AttentionStore.from_state_dict(store.state_dict(), rank=rank)


@pytest.mark.parametrize('quantize,sync_every_epoch', [(False, False), (True, False),
                                                       (False, True)])
def test_merging_random_per_rank_stores_equals_the_single_process_store(quantize,
                                                                        sync_every_epoch):
    rng = np.random.default_rng(3)
    epochs, keys = 5, [(f'i{i}', c) for i in range(12) for c in range(2)]
    single = AttentionStore(quantize=quantize, keep_current=True)
    ranks = [AttentionStore(quantize=quantize, keep_current=True, rank=r) for r in range(3)]
    for epoch in range(1, epochs):
        owner = {img: int(rng.integers(3)) for img in {k[0] for k in keys}}   # a rank per visit
        last = epoch == epochs - 1
        for key in keys:
            amap, ok = rng.random((3, 4)), bool(rng.random() < 0.6)
            single.visit(key, amap, ok, epoch, last=last)
            ranks[owner[key[0]]].visit(key, amap, ok, epoch, last=last)
        if not last:   # the latest accepted maps (attention drop) agree before the last epoch
            merged = AttentionStore.merged(ranks)
            assert sorted(merged.current) == sorted(single.current)
            assert all(np.array_equal(merged.current[k], single.current[k])
                       for k in single.current)
            if sync_every_epoch:                      # what the hook does with several ranks
                ranks = [_copy(merged, r) for r in range(3)]
    merged = AttentionStore.merged(ranks)
    assert_same_maps(single.final(), merged.final())
    assert merged.accepted_per_epoch() == single.accepted_per_epoch()
    again = AttentionStore.merged([merged, *ranks, merged])            # idempotent
    assert_same_maps(again.final(), single.final())
    assert again.accepted_per_epoch() == single.accepted_per_epoch()
    if not sync_every_epoch:   # the per-rank final maps alone would not give it
        naive = {k: np.maximum.reduce([s.decode(s.final_raw(k)) for s in ranks if k in s])
                 for k in single.keys()}
        assert any(not np.array_equal(naive[k], v) for k, v in single.final().items())


def test_merge_refuses_mixed_quantisation():
    with pytest.raises(ValueError, match='quantised'):
        AttentionStore(quantize=True).merge(AttentionStore())


# ----------------------------------------------------------------------------- state
def _filled_store(quantize):
    store = AttentionStore(quantize=quantize, keep_current=True)
    store.visit(('a', 0), np.array([[1.0, 0.25], [0.5, 0.0]]), True, 1)
    store.visit(('a', 3), np.array([[0.2, 1.0, 0.0]]), True, 2)
    store.visit(('b', 1), np.array([[0.0, 1.0], [0.125, 0.5]]), False, 3, last=True)
    store.visit(('a', 0), np.array([[0.0, 1.0], [0.0, 0.0]]), True, 3, last=True)
    return store


@pytest.mark.parametrize('quantize', [False, True])
def test_state_dict_round_trips_through_torch_save_with_weights_only(quantize):
    store = _filled_store(quantize)
    buf = io.BytesIO()
    torch.save(store.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    back = AttentionStore(quantize=quantize)
    back.load_state_dict(state)
    assert_same_maps(store.final(), back.final())
    assert back.acc[('a', 0)].dtype == (np.uint8 if quantize else np.float32)
    assert sorted(back.fill) == [('b', 1)] and back.current_epoch == store.current_epoch
    assert back.current_map(('a', 0)).tolist() == [[0, 255], [0, 0]]
    assert back.accepted_per_epoch() == {1: 1, 2: 1, 3: 1}
    with pytest.raises(ValueError, match='quantize'):
        AttentionStore(quantize=not quantize).load_state_dict(state)


def test_save_maps_writes_one_core_cam_file_per_image(tmp_path):
    from wsss_core.io import load_cam
    store = AttentionStore()
    store.visit(('a', 3), np.array([[0.2, 1.0], [0.0, 0.5]]), True, 1)
    store.visit(('a', 0), np.array([[1.0, 0.25], [0.5, 0.0]]), True, 1)
    store.visit(('b', 1), np.array([[0.0, 1.0], [0.125, 0.5]]), False, 3, last=True)
    assert store.save_maps(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.npz', 'b.npz']
    maps, ids = load_cam(tmp_path / 'a.npz')
    assert ids.tolist() == [0, 3] and maps.shape == (2, 2, 2)
    assert np.allclose(maps[1], [[0.2, 1.0], [0.0, 0.5]], atol=1e-3)   # float16 on disk
    maps, ids = load_cam(tmp_path / 'b.npz')
    assert ids.tolist() == [1] and np.allclose(maps[0], [[0.0, 1.0], [0.125, 0.5]])
    with pytest.raises(ValueError, match='different sizes'):
        _filled_store(False).save_maps(tmp_path / 'x')                   # 'a': 2x2 and 1x3


def test_hook_checkpoint_round_trip_restores_the_store_on_resume_only():
    hook, runner = OAAAccumulationHook(drop=dict(prob=1.0)), fake_runner()
    train_step(hook, runner, 1, ['a'], [[1.0, 0.0]], _cam([[1, 0], [0, 0]], [[0, 0], [0, 0]]),
               [[1.0, 0.0]])
    checkpoint = {}
    hook.before_save_checkpoint(runner, checkpoint)
    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    fresh = OAAAccumulationHook(drop=dict(prob=1.0))
    fresh.after_load_checkpoint(runner, loaded)
    assert_same_maps(fresh.store.final(), hook.store.final())
    assert fresh.store.current_map(('a', 0)) is not None
    not_resuming = OAAAccumulationHook()
    not_resuming.after_load_checkpoint(SimpleNamespace(_resume=False), loaded)   # load_from
    assert len(not_resuming.store) == 0
    assert CHECKPOINT_KEY in checkpoint


def test_hook_refuses_a_model_without_the_step_maps_contract_when_training_starts():
    from wsss_core.models.protocols import ModelContractError

    class Plain:
        pass

    class OtherMaps(FakeModel):
        step_map_keys = ('cam',)

    runner = fake_runner()
    runner.model = Plain()
    with pytest.raises(ModelContractError, match=r'OAAAccumulationHook.*Plain has no '
                                                 r'parse_losses, step_map_keys'):
        OAAAccumulationHook().before_train(runner)
    runner.model = OtherMaps()
    with pytest.raises(ModelContractError, match=r"OtherMaps publishes \('cam',\).*without logits"):
        OAAAccumulationHook().before_train(runner)
    runner.model = FakeModel()
    OAAAccumulationHook().before_train(runner)          # satisfies it


def test_hook_refuses_a_step_whose_outputs_carry_no_maps():
    hook, runner = OAAAccumulationHook(), fake_runner()
    batch = dict(img_id=['a'], labels=torch.tensor([[1.0]]))
    runner.epoch = 1
    for outputs in (None, {'loss': torch.tensor(1.0)}, TrainStepOutputs({}, dict(cam=None))):
        with pytest.raises(RuntimeError, match=r"step maps \('cam', 'logits'\).*FakeModel"):
            hook.after_train_iter(runner, 0, batch, outputs)
    two = TrainStepOutputs({}, dict(cam=torch.zeros(2, 1, 2, 2), logits=torch.zeros(2, 1)))
    with pytest.raises(RuntimeError, match='hold 2 images, the batch 1'):
        hook.after_train_iter(runner, 0, batch, two)


def test_hook_options_are_checked():
    with pytest.raises(ValueError, match='filter'):
        OAAAccumulationHook(filter='top1')
    with pytest.raises(ValueError, match='start_epoch'):
        OAAAccumulationHook(start_epoch=-1)
    with pytest.raises(ValueError, match='unknown'):
        OAAAccumulationHook(drop=dict(rate=0.5))
    with pytest.raises(ValueError, match='no epoch would be accumulated'):
        OAAAccumulationHook(start_epoch=4).before_train(fake_runner(max_epochs=4))


def test_hook_sync_merges_the_ranks_stores_into_the_single_process_store(monkeypatch):
    import wsss_oaa.accumulation.hook as hook_mod
    ids = [f'img{i:02d}' for i in range(8)]
    single = OAAAccumulationHook()
    ranks = [OAAAccumulationHook(), OAAAccumulationHook()]
    runner = fake_runner(max_epochs=4)
    for hook in ranks:
        hook.store.rank = ranks.index(hook)
    gathered, this_rank = [], [0]
    monkeypatch.setattr(hook_mod, 'get_world_size', lambda: 2)
    monkeypatch.setattr(hook_mod, 'get_rank', lambda: this_rank[0])
    monkeypatch.setattr(hook_mod, 'all_gather_object', lambda state: list(gathered))
    rng = random.Random(0)
    for epoch in range(4):
        order = list(ids)
        rng.shuffle(order)
        for i, img_id in enumerate(order):     # each image once per epoch, on either rank
            labels, cam, logits = _synthetic_step(img_id, epoch)
            for hook in (single, ranks[i % 2]):
                train_step(hook, runner, epoch, [img_id], labels[None], cam[None], logits[None])
        gathered[:] = [h.store.state_dict() for h in ranks]
        for rank, hook in enumerate(ranks):    # after_train_epoch on every rank
            this_rank[0] = rank
            hook.after_train_epoch(runner)
            assert hook.store.rank == rank
    for hook in ranks:
        assert_same_maps(hook.store.final(), single.store.final())
    assert ranks[0].store.accepted_per_epoch() == single.store.accepted_per_epoch()
