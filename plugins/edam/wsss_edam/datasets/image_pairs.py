"""Image pairs that share a class: the training data of EDAM's collaborative multi-attention.

EDAM (Wu et al., CVPR 2021) trains on *pairs* of images that have at least one image-level
class in common; the attention of each class runs jointly over the tokens of both images.
The reference reads a pre-built list (``EDAM_train.txt``, one pair per line) that it does not
shuffle, and the list was built so that one pass over it "equals 25 original epochs".  Its
construction is not published; :func:`sample_pairs` is this plugin's
(``docs/methods/edam.md#7-training``)::

    for pass in 1..passes:
        for i in shuffle(images):                     # seeded
            P(i) = {j != i : classes(j) & classes(i) != {}}
            if P(i) is empty: skip i                  # no image shares a class with it
            yield (i, uniform draw from P(i))

so every image leads one pair per pass (unless it has no partner) and one pass over the pair
list is about one epoch over the images: **with passes = N, one epoch over the pair list
equals N epochs over the images**.

:class:`ImagePairs` wraps any core dataset: item ``k`` is the list ``[sample_a, sample_b]``,
each image through the dataset's own pipeline (its own random augmentation).
:func:`collate_pairs` flattens a batch of P pairs into one batch of 2P images where rows
``2p`` and ``2p + 1`` are pair ``p``; :class:`PairEpochSampler` walks the pair list in its
order and shards it across ranks.
"""
from __future__ import annotations

import math
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.dataset.utils import default_collate
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.registry import FUNCTIONS
from torch.utils.data import Dataset, Sampler

from wsss_core.datasets import build_dataset
from wsss_core.registry import DATA_SAMPLERS, DATASETS

__all__ = ['sample_pairs', 'image_class_ids', 'ImagePairs', 'collate_pairs', 'PairEpochSampler']

Pair = Tuple[int, int]


# ----------------------------------------------------------------------------- pair sampling
def _partner_pools(class_sets: List[frozenset]) -> Dict[frozenset, np.ndarray]:
    """For each distinct class set: the sorted indices of every image sharing >= 1 class.

    Images with the same class set share one pool (VOC's 10,582 images have a few hundred
    distinct sets), so memory stays small; an image's own index is in its pool.
    """
    by_class: Dict[int, List[int]] = {}
    for i, classes in enumerate(class_sets):
        for c in classes:
            by_class.setdefault(c, []).append(i)
    pools = {}
    for classes in set(class_sets):
        members = [np.asarray(by_class[c], dtype=np.int64) for c in classes]
        pools[classes] = (np.unique(np.concatenate(members)) if members
                          else np.zeros(0, dtype=np.int64))
    return pools


def sample_pairs(class_ids_per_image: Sequence[Sequence[int]], passes: int = 1,
                 seed: int = 0) -> List[Pair]:
    """Pairs ``(i, j)`` of image indices, ``i != j``, sharing at least one class.

    Args:
        class_ids_per_image: the image-level class ids of image ``i`` at position ``i``.
        passes: how many times every image leads a pair (see the module docstring).
        seed: the same seed gives the same list.

    Returns:
        ``passes`` blocks in order; block ``t`` holds one pair ``(i, j)`` per image ``i`` (in
        a seeded random order) with ``j`` drawn uniformly among the *other* images that share
        a class with ``i``.  An image with no such partner (no class, or classes no other
        image has) is skipped: it leads no pair and, sharing nothing, is never drawn as a
        partner either.  So a block has ``N - (images without a partner)`` pairs.
    """
    passes = int(passes)
    if passes < 1:
        raise ValueError(f'passes must be >= 1, got {passes}')
    class_sets = [frozenset(int(c) for c in ids) for ids in class_ids_per_image]
    pools = _partner_pools(class_sets)
    rng = np.random.default_rng(seed)
    pairs: List[Pair] = []
    for _ in range(passes):
        for i in rng.permutation(len(class_sets)).tolist():
            pool = pools[class_sets[i]]
            if pool.size < 2:  # empty (no class) or only the image itself
                continue
            # uniform over pool \ {i}: draw among size - 1 slots and skip i's own slot
            r = int(rng.integers(pool.size - 1))
            if r >= int(np.searchsorted(pool, i)):
                r += 1
            pairs.append((i, int(pool[r])))
    return pairs


def image_class_ids(dataset) -> List[tuple]:
    """The image-level class ids of every image of ``dataset`` (0-based).

    From ``dataset.records[i].class_ids`` (the core's VOC-layout datasets: no file is read),
    else from the multi-hot ``labels`` of ``dataset.load_sample(i)`` (or ``dataset[i]``).
    """
    records = getattr(dataset, 'records', None)
    if records is not None:
        return [tuple(int(c) for c in r.class_ids) for r in records]
    load = getattr(dataset, 'load_sample', dataset.__getitem__)
    return [tuple(np.flatnonzero(np.asarray(load(i)['labels']) > 0).tolist())
            for i in range(len(dataset))]


# ----------------------------------------------------------------------------- dataset
@DATASETS.register_module()
class ImagePairs(Dataset):
    """A dataset of image pairs sharing a class, over any image dataset.

    Args:
        dataset: the image dataset: a config (built with
            :func:`wsss_core.datasets.build_dataset`, ``dataset_overrides`` applied) or an
            object with ``__getitem__`` / ``__len__`` (and ideally ``records``, ``num_classes``,
            ``class_names``).  Its pipeline transforms each image of a pair on its own.
        pairs: an explicit pair list, as ``(i, j)`` indices or ``(id_a, id_b)`` image ids;
            each pair must share a class.  Default: :func:`sample_pairs` with ``passes`` and
            ``seed``.
        passes, seed: for :func:`sample_pairs` (one epoch over the pairs ~ ``passes``
            epochs over the images).
        dataset_overrides: keyword overrides for ``build_dataset`` (``split``, ``pipeline``).

    Item ``k`` is ``[dataset[i], dataset[j]]`` for ``pairs[k] == (i, j)``; batch it with
    :func:`collate_pairs`.
    """

    def __init__(self, dataset: Union[dict, Dataset], pairs: Optional[Sequence] = None,
                 passes: int = 1, seed: int = 0, **dataset_overrides):
        if isinstance(dataset, dict):
            dataset = build_dataset(dataset, **dataset_overrides)
        elif dataset_overrides:
            raise TypeError(f'options {sorted(dataset_overrides)} only apply when dataset is a '
                            'config dict, not a built dataset')
        self.dataset = dataset
        self.class_ids = image_class_ids(dataset)
        self.passes, self.seed = int(passes), seed
        if pairs is None:
            self.pairs = sample_pairs(self.class_ids, passes=self.passes, seed=seed)
        else:
            self.pairs = [self._check_pair(k, p) for k, p in enumerate(pairs)]

    def _check_pair(self, k: int, pair) -> Pair:
        if len(pair) != 2:
            raise ValueError(f'pair #{k} {pair!r} is not two images')
        ids = None
        out = []
        for v in pair:
            if isinstance(v, str):
                if ids is None:
                    ids = {img_id: i for i, img_id in enumerate(self.img_ids)}
                if v not in ids:
                    raise ValueError(f"pair #{k}: image '{v}' is not in the dataset")
                v = ids[v]
            v = int(v)
            if not 0 <= v < len(self.dataset):
                raise ValueError(f'pair #{k}: index {v} outside 0..{len(self.dataset) - 1}')
            out.append(v)
        if not self.shared_classes(*out):
            raise ValueError(f'pair #{k} {pair!r} shares no class (classes '
                             f'{self.class_ids[out[0]]} and {self.class_ids[out[1]]})')
        return out[0], out[1]

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, k: int) -> list:
        i, j = self.pairs[k]
        return [self.dataset[i], self.dataset[j]]

    def shared_classes(self, i: int, j: int) -> tuple:
        """The classes images ``i`` and ``j`` have in common (sorted)."""
        return tuple(sorted(set(self.class_ids[i]) & set(self.class_ids[j])))

    @property
    def unpaired(self) -> List[int]:
        """Indices of the images that lead no pair (no partner shares a class with them)."""
        leading = {i for i, _ in self.pairs}
        return [i for i in range(len(self.dataset)) if i not in leading]

    @property
    def img_ids(self) -> List[str]:
        ids = getattr(self.dataset, 'img_ids', None)
        if ids is None:
            raise AttributeError(f'{type(self.dataset).__name__} has no img_ids')
        return list(ids)

    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes

    @property
    def class_names(self) -> tuple:
        return tuple(self.dataset.class_names)

    @property
    def metainfo(self) -> dict:
        meta = dict(getattr(self.dataset, 'metainfo', None) or
                    dict(classes=self.class_names, num_classes=self.num_classes))
        meta.update(pairs=len(self.pairs), passes=self.passes)
        return meta

    def pair_lines(self) -> List[str]:
        """``'<id_a> <id_b> <shared class ids, comma-separated>'`` per pair (for a text file)."""
        ids = self.img_ids
        return [f"{ids[i]} {ids[j]} {','.join(map(str, self.shared_classes(i, j)))}"
                for i, j in self.pairs]


@FUNCTIONS.register_module(force=True)
def collate_pairs(batch: Sequence[Sequence[dict]]):
    """P items ``[sample_a, sample_b]`` -> one batch of 2P images (mmengine's
    ``default_collate``): tensors stacked to ``(2P, ...)``, strings to lists, with the images
    of pair ``p`` at rows ``2p`` and ``2p + 1``.

    Registered in mmengine's FUNCTIONS (``collate_fn=dict(type='collate_pairs')``).
    """
    flat = []
    for k, item in enumerate(batch):
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise TypeError(f'collate_pairs: batch item #{k} is not a pair [sample_a, sample_b] '
                            f'(got {type(item).__name__}); is the dataset ImagePairs?')
        flat.extend(item)
    return default_collate(flat)


# ----------------------------------------------------------------------------- sampler
@DATA_SAMPLERS.register_module()
class PairEpochSampler(Sampler):
    """Indices of the pair list in its own order, sharded across ranks.

    The reference trains with ``shuffle=False`` over a list that is already shuffled pass
    by pass (:func:`sample_pairs`), so this sampler keeps that order.  With ``passes = N``
    pairs, **one epoch over the pair list equals N epochs over the images** (set
    ``max_epochs`` accordingly: EDAM's recipe is passes 25, one epoch).

    Rank ``r`` of ``W`` takes positions ``r, r + W, r + 2W, ...``.  Every rank gets the
    same count: ``round_up=True`` pads the list by repeating it from its start to a multiple
    of ``W``; ``round_up=False`` drops the last ``len % W`` pairs.

    Args:
        dataset: the pair dataset (only its length is used).
        shuffle: False (default, the reference) keeps the order in every epoch; True draws
            a permutation from ``seed + epoch`` (:meth:`set_epoch`), the same on every rank.
        seed: for ``shuffle``; default a seed shared by all ranks.
        round_up: pad (True) or drop (False) to an equal count per rank.
        rank, world_size: default :func:`mmengine.dist.get_dist_info`.
    """

    def __init__(self, dataset, shuffle: bool = False, seed: Optional[int] = None,
                 round_up: bool = True, rank: Optional[int] = None,
                 world_size: Optional[int] = None):
        dist_rank, dist_world = get_dist_info()
        self.rank = dist_rank if rank is None else int(rank)
        self.world_size = dist_world if world_size is None else int(world_size)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f'rank {self.rank} outside 0..{self.world_size - 1}')
        self.dataset = dataset
        self.shuffle = bool(shuffle)
        self.seed = (seed if seed is not None else sync_random_seed()) if shuffle else seed
        self.round_up = bool(round_up)
        self.epoch = 0
        n, w = len(dataset), self.world_size
        self.num_samples = math.ceil(n / w) if self.round_up else n // w
        self.total_size = self.num_samples * w

    def indices(self) -> List[int]:
        """All ranks' positions for this epoch, padded or cut to ``total_size``."""
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng([int(self.seed), int(self.epoch)]).permutation(n)
            order = order.tolist()
        else:
            order = list(range(n))
        if self.total_size > n and n:
            order = (order * math.ceil(self.total_size / n))[:self.total_size]
        return order[:self.total_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices()[self.rank::self.world_size])

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Called by mmengine before each epoch; changes the order only with ``shuffle``."""
        self.epoch = int(epoch)
