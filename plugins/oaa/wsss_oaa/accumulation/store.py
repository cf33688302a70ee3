"""The attention store of online attention accumulation (Jiang et al., ICCV 2019, §3.2;
``docs/methods/oaa.md#24-online-accumulation``), keyed by ``(image id, class)``.

The reference rule, for every training visit of image ``i`` with ground-truth class ``c``
in epoch ``e`` (epochs ``0 .. E-1``)::

    a = relu(A_c) / (max relu(A_c) + 1e-8)            max-normalised attention of this step
    e <  start_epoch                    -> nothing (the first epoch never writes)
    e == E-1 and (i, c) not in store    -> store[i, c] = a   ("fill", even if not accepted)
    accepted(i, c)                      -> store[i, c] = max(store[i, c], a)   element-wise
    otherwise                           -> nothing

``accepted`` is OAA's quality filter (``c`` among the top-k sigmoid scores, k = number of
ground-truth classes, :func:`topk_accepts`) and/or NSROM's ``sigmoid(s_c) >= 0.1``.

Exact merging of per-rank stores.  A data-parallel rank only sees its share of the visits,
so "not in store" at a last-epoch visit cannot be decided locally.  The store therefore
keeps the last epoch apart, in three tables of maps at CAM resolution::

    acc[k]       max of the accepted maps of epochs start_epoch .. E-2
    acc_last[k]  max of the accepted maps of epoch E-1 (a fill visit included)
    fill[k]      the map of the first epoch-(E-1) visit when k was in neither acc nor fill

and the exported (final) map is::

    final[k] = max(acc[k], acc_last[k])    if k in acc       (k existed before the last epoch)
             = max(fill[k], acc_last[k])   otherwise         (the fill, raised by later accepts)

which is the reference rule for a single process (a fill visit's own map equals ``fill[k]``,
so adding it to ``acc_last`` changes nothing).  Merging takes the element-wise max of
``acc`` and of ``acc_last`` and the union of ``fill`` (the first store's fill wins a tie);
a fill a rank made for a key that another rank had accumulated earlier is then simply not
used, and an accepted last-epoch visit that a rank saw as a fill still counts through
``acc_last``.  So merging the per-rank stores gives exactly the single-process result
whenever each image is visited once per epoch, whatever rank saw it.  Merging is
idempotent (merging a merged store again changes nothing).

``quantize=True`` reproduces the reference's 8-bit files: every written map is kept as
``clip(rint(255 a), 0, 255)`` uint8 and the max-fusion runs on those values.
``keep_current=True`` also keeps the latest accepted map per key (uint8, with its epoch)
for attention drop (``docs/methods/oaa.md#25-attention-drop``); a fill visit does not write it.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch

Key = Tuple[str, int]

#: format tag in :meth:`AttentionStore.state_dict`
STATE_FORMAT = 'wsss-oaa-attention-store/1'


# ----------------------------------------------------------------------------- the rule
def max_normalise(cam: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``relu(A) / (max relu(A) + eps)`` per map over the last two dims
    (``docs/methods/oaa.md#24-online-accumulation``)."""
    pos = cam.detach().float().clamp_min(0)
    return pos / (pos.amax(dim=(-2, -1), keepdim=True) + eps)


def topk_accepts(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """OAA's filter: (B, C) bool, True where class c is among the k highest ``sigmoid(s)``
    of its image, k = the image's number of ground-truth classes
    (``docs/methods/oaa.md#24-online-accumulation``)."""
    k = (labels > 0).sum(dim=1)
    order = torch.argsort(-torch.sigmoid(logits.detach().float()), dim=1, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return rank < k[:, None]


def score_accepts(logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """NSROM's filter: (B, C) bool, True where ``sigmoid(s_c) >= threshold``
    (``docs/methods/nsrom.md#33-classifier-training-and-accumulation``)."""
    return torch.sigmoid(logits.detach().float()) >= threshold


def to_uint8(amap: np.ndarray) -> np.ndarray:
    """The reference's 8-bit write: ``clip(rint(255 a), 0, 255)`` as uint8."""
    return np.clip(np.rint(np.asarray(amap, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- the store
class AttentionStore:
    """In-memory accumulated attention per ``(img_id, class)``; see the module docstring.

    Args:
        quantize: keep 8-bit values (the reference's PNG rounding on every write).
        keep_current: also keep the latest accepted map of each key (attention drop).
        rank: this process's rank; only labels the accepted-map counters.
    """

    def __init__(self, quantize: bool = False, keep_current: bool = False, rank: int = 0):
        self.quantize = bool(quantize)
        self.keep_current = bool(keep_current)
        self.rank = int(rank)
        self.acc: Dict[Key, np.ndarray] = {}
        self.acc_last: Dict[Key, np.ndarray] = {}
        self.fill: Dict[Key, np.ndarray] = {}
        self.current: Dict[Key, np.ndarray] = {}
        self.current_epoch: Dict[Key, int] = {}
        #: accepted maps per (rank, epoch): merged by max, so merging stays idempotent
        self.accepted: Dict[Tuple[int, int], int] = defaultdict(int)

    # ------------------------------------------------------------------ writing
    def encode(self, amap) -> np.ndarray:
        """A max-normalised map as stored: uint8 with ``quantize``, else float32."""
        if isinstance(amap, torch.Tensor):
            amap = amap.detach().float().cpu().numpy()
        return to_uint8(amap) if self.quantize else np.array(amap, dtype=np.float32)

    def visit(self, key: Key, amap, accepted: bool, epoch: int, last: bool = False) -> None:
        """Apply the rule to one visit of ``key`` with max-normalised map ``amap``.

        ``last``: this is the last epoch with the fill rule (the caller decides whether
        ``epoch`` is accumulated at all, i.e. ``epoch >= start_epoch``).
        """
        key = (str(key[0]), int(key[1]))
        stored = self.encode(amap)
        if last:
            filled = key not in self.acc and key not in self.fill
            if filled:
                self.fill[key] = stored
            if accepted:
                _max_into(self.acc_last, key, stored)
        else:
            filled = False
            if accepted:
                _max_into(self.acc, key, stored)
        if accepted:
            self.accepted[(self.rank, int(epoch))] += 1
            if self.keep_current and not filled:
                self.current[key] = stored if self.quantize else to_uint8(stored)
                self.current_epoch[key] = int(epoch)

    # ------------------------------------------------------------------ reading
    def keys(self) -> List[Key]:
        """Every key with a final map, sorted."""
        return sorted(set(self.acc) | set(self.acc_last) | set(self.fill))

    def __len__(self) -> int:
        return len(self.keys())

    def __contains__(self, key) -> bool:
        key = (str(key[0]), int(key[1]))
        return key in self.acc or key in self.acc_last or key in self.fill

    def final_raw(self, key: Key) -> np.ndarray:
        """The final map of ``key`` in the stored dtype (see the module docstring)."""
        key = (str(key[0]), int(key[1]))
        base = self.acc.get(key)
        if base is None:
            base = self.fill.get(key)
        extra = self.acc_last.get(key)
        if base is None and extra is None:
            raise KeyError(f'no accumulated attention for image {key[0]!r}, class {key[1]}')
        if base is None:
            return extra
        return base if extra is None else np.maximum(base, extra)

    def final(self) -> Dict[Key, np.ndarray]:
        """Every final map as float32 in [0, 1] at CAM resolution."""
        return {k: self.decode(self.final_raw(k)) for k in self.keys()}

    def decode(self, stored: np.ndarray) -> np.ndarray:
        if stored.dtype == np.uint8:
            return stored.astype(np.float32) / 255.0
        return stored.astype(np.float32, copy=True)

    def current_map(self, key: Key) -> Optional[np.ndarray]:
        """The latest accepted map of ``key`` (uint8), or None."""
        return self.current.get((str(key[0]), int(key[1])))

    def from_fill(self) -> int:
        """How many final maps come from a last-epoch fill (no accepted map before it)."""
        return sum(1 for k in self.fill if k not in self.acc)

    def accepted_per_epoch(self) -> Dict[int, int]:
        out: Dict[int, int] = defaultdict(int)
        for (_, epoch), n in self.accepted.items():
            out[epoch] += n
        return dict(sorted(out.items()))

    def by_image(self) -> Dict[str, List[int]]:
        out: Dict[str, List[int]] = defaultdict(list)
        for img_id, c in self.keys():
            out[img_id].append(c)
        return dict(out)

    # ------------------------------------------------------------------ merging
    def merge(self, other: 'AttentionStore') -> 'AttentionStore':
        """Merge ``other`` (another rank's store) into this one, in place; see the docstring."""
        if other.quantize != self.quantize:
            raise ValueError('cannot merge a quantised and a float attention store')
        for key, m in other.acc.items():
            _max_into(self.acc, key, m)
        for key, m in other.acc_last.items():
            _max_into(self.acc_last, key, m)
        for key, m in other.fill.items():
            self.fill.setdefault(key, m)
        for key, m in other.current.items():
            if other.current_epoch[key] > self.current_epoch.get(key, -1):
                self.current[key] = m
                self.current_epoch[key] = other.current_epoch[key]
        for rank_epoch, n in other.accepted.items():
            self.accepted[rank_epoch] = max(self.accepted.get(rank_epoch, 0), n)
        return self

    @classmethod
    def merged(cls, stores: Iterable['AttentionStore'], rank: int = 0) -> 'AttentionStore':
        """A new store merging ``stores`` in order (pass them in rank order)."""
        stores = list(stores)
        if not stores:
            raise ValueError('nothing to merge')
        out = cls(quantize=stores[0].quantize,
                  keep_current=any(s.keep_current for s in stores), rank=rank)
        for store in stores:
            out.merge(store)
        return out

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict:
        """Tensors, strings and lists of strings only: loads under ``weights_only=True``."""
        tables = {name: _pack(getattr(self, name))
                  for name in ('acc', 'acc_last', 'fill', 'current')}
        tables['current']['epochs'] = torch.tensor(
            [self.current_epoch[k] for k in sorted(self.current)], dtype=torch.int64)
        counts = sorted(self.accepted.items())
        return dict(format=STATE_FORMAT, quantize=torch.tensor(self.quantize),
                    keep_current=torch.tensor(self.keep_current),
                    accepted=torch.tensor([[r, e, n] for (r, e), n in counts],
                                          dtype=torch.int64).reshape(-1, 3),
                    **tables)

    def load_state_dict(self, state: dict) -> None:
        """Replace this store's content by ``state`` (from :meth:`state_dict`)."""
        if state.get('format') != STATE_FORMAT:
            raise ValueError(f"not an attention store state (format {state.get('format')!r}, "
                             f'expected {STATE_FORMAT!r})')
        quantize = bool(state['quantize'])
        if quantize != self.quantize:
            raise ValueError(f'the saved attention store has quantize={quantize}, this one '
                             f'quantize={self.quantize}: resume with the same setting')
        self.keep_current = self.keep_current or bool(state['keep_current'])
        for name in ('acc', 'acc_last', 'fill', 'current'):
            setattr(self, name, _unpack(state[name]))
        keys = sorted(self.current)
        self.current_epoch = dict(zip(keys, state['current']['epochs'].tolist()))
        self.accepted = defaultdict(int, {(int(r), int(e)): int(n)
                                          for r, e, n in state['accepted'].tolist()})

    @classmethod
    def from_state_dict(cls, state: dict, rank: int = 0) -> 'AttentionStore':
        store = cls(quantize=bool(state['quantize']), keep_current=bool(state['keep_current']),
                    rank=rank)
        store.load_state_dict(state)
        return store

    # ------------------------------------------------------------------ export
    def save_maps(self, out_dir) -> int:
        """Write ``<img_id>.npz`` per image in the core CAM format (class ids + maps in
        [0, 1] at CAM resolution), each file atomically; return the number of images."""
        from wsss_core.io import save_cam
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        images = self.by_image()
        for img_id, classes in images.items():
            maps = [self.decode(self.final_raw((img_id, c))) for c in classes]
            shapes = {m.shape for m in maps}
            if len(shapes) != 1:
                raise ValueError(f'image {img_id!r}: accumulated maps of different sizes {shapes}')
            save_cam(out_dir / f'{img_id}.npz', np.stack(maps), classes)
        return len(images)


# ----------------------------------------------------------------------------- helpers
def _max_into(table: Dict[Key, np.ndarray], key: Key, value: np.ndarray) -> None:
    old = table.get(key)
    if old is None:
        table[key] = value
    elif old.shape != value.shape:
        raise ValueError(f'image {key[0]!r}, class {key[1]}: attention map {value.shape} differs '
                         f'from the accumulated {old.shape}; accumulation needs a fixed input '
                         'geometry (no random crop/flip/scale in the training pipeline)')
    else:
        table[key] = np.maximum(old, value)


def _pack(table: Dict[Key, np.ndarray]) -> dict:
    keys = sorted(table)
    maps = [table[k] for k in keys]
    data = np.concatenate([m.ravel() for m in maps]) if maps else np.zeros(0, np.float32)
    return dict(img_ids=[k[0] for k in keys],
                classes=torch.tensor([k[1] for k in keys], dtype=torch.int64),
                shapes=torch.tensor([m.shape for m in maps], dtype=torch.int64).reshape(-1, 2),
                data=torch.from_numpy(np.ascontiguousarray(data)))


def _unpack(packed: dict) -> Dict[Key, np.ndarray]:
    data = packed['data'].numpy()
    shapes = packed['shapes'].tolist()
    out, start = {}, 0
    for img_id, c, (h, w) in zip(packed['img_ids'], packed['classes'].tolist(), shapes):
        out[(str(img_id), int(c))] = data[start:start + h * w].reshape(h, w).copy()
        start += h * w
    if start != data.size:
        raise ValueError(f'attention store state holds {data.size} values for maps of '
                         f'{start} values in total')
    return out
