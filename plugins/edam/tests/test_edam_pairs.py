"""EDAM's image pairs: the pair sampler (shared class, passes, seeds), the ImagePairs dataset,
the pair collate (rows 2p / 2p + 1) and the pair-list sampler's rank sharding."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from wsss_edam.testing import TINY_GENERATOR, registered  # noqa: F401 (fixture)


@pytest.fixture(scope='module', autouse=True)
def plugins(registered):  # noqa: F811  (the core and the plugin, as wsss-run loads them)
    return registered


def random_label_sets(n=60, num_classes=7, seed=0):
    """Random label sets with, on purpose, images without a partner: no class at all, or a
    class (6) that only one image has."""
    rng = np.random.default_rng(seed)
    sets = [tuple(sorted(rng.choice(6, size=rng.integers(1, 4), replace=False).tolist()))
            for _ in range(n)]
    sets[3] = ()          # no class
    sets[7] = (6,)        # a class nobody else has
    return sets


class FakeImages(torch.utils.data.Dataset):
    """Images whose pixels hold their index; labels from ``label_sets``; no files."""

    def __init__(self, label_sets, num_classes=7, stamp=False):
        self.label_sets, self.num_classes = label_sets, num_classes
        self.class_names = tuple(f'c{i}' for i in range(num_classes))
        self.stamp = stamp

    def __len__(self):
        return len(self.label_sets)

    @property
    def img_ids(self):
        return [f'img{i}' for i in range(len(self))]

    def load_sample(self, i):
        labels = np.zeros(self.num_classes, np.float32)
        labels[list(self.label_sets[i])] = 1
        return dict(img_id=f'img{i}', labels=labels)

    def __getitem__(self, i):
        out = dict(img_id=f'img{i}', img=torch.full((3, 4, 5), i, dtype=torch.uint8),
                   labels=torch.as_tensor(self.load_sample(i)['labels']))
        if self.stamp:  # a random draw per call, like a random augmentation
            out['draw'] = torch.rand(())
        return out


# ----------------------------------------------------------------------------- sample_pairs
@pytest.mark.parametrize('seed', [0, 1, 2, 3])
def test_every_pair_shares_a_class_and_partnerless_images_are_skipped(seed):
    from wsss_edam.datasets.image_pairs import sample_pairs
    sets = random_label_sets(seed=seed)
    pairs = sample_pairs(sets, passes=3, seed=seed)
    for i, j in pairs:
        assert i != j and set(sets[i]) & set(sets[j]), (i, j, sets[i], sets[j])
    used = {i for p in pairs for i in p}
    assert 3 not in used and 7 not in used                  # no partner: never paired
    leads = Counter(i for i, _ in pairs)
    assert set(leads) == set(range(len(sets))) - {3, 7}
    assert set(leads.values()) == {3}                       # one pair per image per pass
    n = len(sets) - 2
    for t in range(3):                                      # each pass: a shuffled permutation
        block = [i for i, _ in pairs[t * n:(t + 1) * n]]
        assert sorted(block) == sorted(leads)
    assert [i for i, _ in pairs[:n]] != [i for i, _ in pairs[n:2 * n]]


def test_deterministic_under_a_seed_and_different_across_seeds():
    from wsss_edam.datasets.image_pairs import sample_pairs
    sets = random_label_sets()
    assert sample_pairs(sets, 2, seed=5) == sample_pairs(sets, 2, seed=5)
    assert sample_pairs(sets, 2, seed=5) != sample_pairs(sets, 2, seed=6)


def test_passes_n_gives_n_times_the_pairs_and_extends_the_one_pass_list():
    from wsss_edam.datasets.image_pairs import sample_pairs
    sets = random_label_sets()
    one = sample_pairs(sets, passes=1, seed=0)
    four = sample_pairs(sets, passes=4, seed=0)
    assert len(one) == len(sets) - 2 and len(four) == 4 * len(one)
    assert four[:len(one)] == one
    with pytest.raises(ValueError, match='passes'):
        sample_pairs(sets, passes=0)


def test_partner_is_uniform_among_the_images_sharing_a_class():
    from wsss_edam.datasets.image_pairs import sample_pairs
    # image 0 ({0, 1}) shares with 1 ({0}), 2 ({1}), 3 ({0, 1}); not with 4 ({2}) and 5 ({2})
    sets = [(0, 1), (0,), (1,), (0, 1), (2,), (2,)]
    pairs = sample_pairs(sets, passes=3000, seed=0)
    partners = Counter(j for i, j in pairs if i == 0)
    assert set(partners) == {1, 2, 3}
    assert all(abs(c / 3000 - 1 / 3) < 0.04 for c in partners.values()), partners
    assert Counter(j for i, j in pairs if i == 4) == {5: 3000}


# ----------------------------------------------------------------------------- dataset
def test_image_pairs_items_and_explicit_pair_lists():
    from wsss_edam.datasets.image_pairs import ImagePairs
    sets = random_label_sets(n=12)
    pairs = ImagePairs(FakeImages(sets), passes=2, seed=3)
    assert len(pairs) == 2 * (12 - 2) and pairs.passes == 2
    assert sorted(pairs.unpaired) == [3, 7]
    a, b = pairs[0]
    i, j = pairs.pairs[0]
    assert (a['img_id'], b['img_id']) == (f'img{i}', f'img{j}')
    assert pairs.num_classes == 7 and pairs.class_names[0] == 'c0'
    assert pairs.metainfo['pairs'] == len(pairs) and pairs.metainfo['num_classes'] == 7
    assert pairs.pair_lines()[0].split()[:2] == [f'img{i}', f'img{j}']
    # explicit lists: indices or ids; a pair without a shared class is refused
    sets = [(0,), (0, 1), (1,), (2,)]
    explicit = ImagePairs(FakeImages(sets), pairs=[(0, 1), ('img2', 'img1')])
    assert explicit.pairs == [(0, 1), (2, 1)] and explicit.shared_classes(2, 1) == (1,)
    with pytest.raises(ValueError, match='shares no class'):
        ImagePairs(FakeImages(sets), pairs=[(0, 2)])
    with pytest.raises(ValueError, match='not in the dataset'):
        ImagePairs(FakeImages(sets), pairs=[('img0', 'nope')])


def test_each_image_of_a_pair_gets_its_own_augmentation_draw():
    from wsss_edam.datasets.image_pairs import ImagePairs
    pairs = ImagePairs(FakeImages([(0,), (0,)], stamp=True), pairs=[(0, 1), (1, 0)])
    torch.manual_seed(0)
    a, b = pairs[0]
    assert a['draw'] != b['draw']


def test_built_from_a_config_over_synthetic_shapes():
    from wsss_core.registry import DATASETS, build
    data = dict(type='SyntheticShapes', generator=dict(TINY_GENERATOR), progress=False)
    pairs = build(dict(type='ImagePairs', dataset=data, split='train', passes=2, seed=1,
                       pipeline=[dict(type='PackInputs', keys=('img', 'labels'))]), DATASETS)
    assert len(pairs) == 2 * (TINY_GENERATOR['num_train'] - len(pairs.unpaired))
    assert pairs.class_names == pairs.dataset.class_names
    for i, j in pairs.pairs:
        assert pairs.shared_classes(i, j)
    a, b = pairs[0]
    assert a['img'].shape == (3, 48, 48) and a['labels'].shape == (3,)


# ----------------------------------------------------------------------------- collate
def test_collate_gives_2p_rows_with_pair_rows_adjacent():
    from mmengine.registry import FUNCTIONS
    from wsss_edam.datasets.image_pairs import ImagePairs, collate_pairs
    assert FUNCTIONS.get('collate_pairs') is collate_pairs   # collate_fn=dict(type=...)
    pairs = ImagePairs(FakeImages(random_label_sets(n=12)), seed=0)
    batch = collate_pairs([pairs[k] for k in range(3)])
    assert batch['img'].shape == (6, 3, 4, 5) and batch['labels'].shape == (6, 7)
    for p in range(3):
        i, j = pairs.pairs[p]
        assert int(batch['img'][2 * p, 0, 0, 0]) == i and int(batch['img'][2 * p + 1, 0, 0, 0]) == j
        assert batch['img_id'][2 * p:2 * p + 2] == [f'img{i}', f'img{j}']
        assert (batch['labels'][2 * p] * batch['labels'][2 * p + 1]).sum() >= 1
    with pytest.raises(TypeError, match='not a pair'):
        collate_pairs([pairs.dataset[0]])


# ----------------------------------------------------------------------------- sampler
def test_sampler_keeps_the_list_order_and_ignores_the_epoch():
    from wsss_edam.datasets.image_pairs import PairEpochSampler
    sampler = PairEpochSampler(list(range(7)), rank=0, world_size=1)
    assert list(sampler) == list(range(7)) and len(sampler) == 7
    sampler.set_epoch(3)
    assert list(sampler) == list(range(7))


@pytest.mark.parametrize('n', [10, 11])
def test_two_ranks_cover_the_list_without_overlap(n):
    from wsss_edam.datasets.image_pairs import PairEpochSampler
    data = list(range(n))
    r0, r1 = (list(PairEpochSampler(data, rank=r, world_size=2)) for r in (0, 1))
    assert len(r0) == len(r1) == -(-n // 2)
    assert r0 == list(range(0, n, 2))
    if n % 2 == 0:
        assert sorted(r0 + r1) == data and not set(r0) & set(r1)
    else:  # padded with the first pair: every pair once, plus one repeat to even the ranks
        assert sorted(set(r0 + r1)) == data and len(r0 + r1) == n + 1
        assert r1[-1] == 0
    d0, d1 = (list(PairEpochSampler(data, rank=r, world_size=2, round_up=False))
              for r in (0, 1))
    assert len(d0) == len(d1) == n // 2 and not set(d0) & set(d1)
    assert sorted(d0 + d1) == data[:2 * (n // 2)]             # the tail is dropped


def test_sampler_shuffle_option_is_epoch_seeded_and_rank_consistent():
    from wsss_edam.datasets.image_pairs import PairEpochSampler
    data = list(range(20))
    samplers = [PairEpochSampler(data, shuffle=True, seed=4, rank=r, world_size=2)
                for r in (0, 1)]
    first = [list(s) for s in samplers]
    assert sorted(first[0] + first[1]) == data
    for s in samplers:
        s.set_epoch(1)
    second = [list(s) for s in samplers]
    assert sorted(second[0] + second[1]) == data and second != first
    again = PairEpochSampler(data, shuffle=True, seed=4, rank=0, world_size=2)
    assert list(again) == first[0]


def test_sampler_builds_through_mmengine_with_the_core_scope():
    from mmengine import registry as mme
    from wsss_edam.datasets.image_pairs import PairEpochSampler
    with mme.DefaultScope.overwrite_default_scope('wsss_core'):
        sampler = mme.DATA_SAMPLERS.build(dict(type='PairEpochSampler'),
                                          default_args=dict(dataset=list(range(5)), seed=0))
    assert isinstance(sampler, PairEpochSampler) and list(sampler) == list(range(5))
    with pytest.raises(ValueError, match='rank'):
        PairEpochSampler(list(range(5)), rank=2, world_size=2)
