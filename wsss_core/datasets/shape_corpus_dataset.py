"""ShapeCorpus as a dataset: generated once into the cache, then read from memory-mapped arrays."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..registry import DATASETS
from .records import RecordsDataset
from .shape_corpus import SPLITS, corpus_config
from .shape_corpus_cache import array_paths, ensure_corpus
from .transforms import Compose


@dataclass(frozen=True)
class CorpusRecord:
    """One image of the corpus: its id, its row in the split's arrays and its class."""
    img_id: str
    row: int
    label: int


@DATASETS.register_module()
class ShapeCorpus(RecordsDataset):
    """The seeded single-label pretraining corpus (see ``wsss_core.datasets.shape_corpus``).

    Generator options (``image_size``, ``num_classes``, ``train_per_class``, ``seed``, ...) go
    in ``generator``; ``root`` overrides the cache directory ($WSSS_CACHE or ~/.cache/wsss).
    A sample is ``img_id`` ('train_000042'), ``img`` (H, W, 3 uint8 RGB), ``labels``
    (one-hot float32 over ``num_classes``) and ``label`` (the class, int), then ``pipeline``.
    The corpus has no masks: ``load_gt`` is accepted (the keyword interface every dataset
    shares) and changes nothing.
    """

    def __init__(self, split: str = 'train', generator: Optional[dict] = None,
                 root: Optional[str] = None, workers: int = 2,
                 pipeline: Optional[Sequence] = None, max_samples: Optional[int] = None,
                 load_gt: bool = False, progress: bool = True):
        if split not in SPLITS:
            raise ValueError(f'ShapeCorpus has the splits {tuple(SPLITS)}, not {split!r}')
        gen_cfg = corpus_config(**(generator or {}))
        self.data_root = ensure_corpus(gen_cfg, root=root, workers=workers, progress=progress)
        self.split = split
        self.generator_config = gen_cfg
        self.num_classes = gen_cfg.num_classes
        self.class_names = gen_cfg.class_names
        self.load_gt = load_gt
        self._images_path, labels_path = array_paths(self.data_root, split)
        labels = np.load(labels_path, allow_pickle=False)
        if max_samples is not None:
            labels = labels[:int(max_samples)]
        self.records = [CorpusRecord(f'{split}_{row:06d}', row, int(label))
                        for row, label in enumerate(labels.tolist())]
        self.pipeline = Compose(pipeline)
        self._images = None

    @classmethod
    def check_config(cls, cfg: dict) -> None:
        """Refuse generator knobs the corpus refuses (``ValueError``), without generating."""
        corpus_config(**(cfg.get('generator') or {}))

    @property
    def images(self) -> np.ndarray:
        """The split's (N, H, W, 3) uint8 images, memory-mapped read-only (opened on first use
        in each process)."""
        if self._images is None:
            self._images = np.load(self._images_path, mmap_mode='r', allow_pickle=False)
        return self._images

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state['_images'] = None   # a worker maps the file itself instead of copying it
        return state

    def load_sample(self, index: int) -> dict:
        """The raw sample (before the pipeline); ``img`` is a writable copy."""
        rec = self.records[index]
        return dict(img_id=rec.img_id, img=np.array(self.images[rec.row]),
                    labels=self.labels_vector((rec.label,)), label=rec.label)

    @property
    def labels_array(self) -> np.ndarray:
        """The classes of the samples, in order (int64)."""
        return np.array([r.label for r in self.records], np.int64)

    def __repr__(self) -> str:
        return (f'ShapeCorpus(split={self.split!r}, {len(self)} images, '
                f'{self.num_classes} classes, root={str(Path(self.data_root))!r})')
