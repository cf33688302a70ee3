"""The part every record-based dataset of the core shares: length, ids, the image-label
vector, the pipeline and the metainfo.  A subclass sets ``records`` (objects with
``img_id``), ``num_classes``, ``class_names`` and ``pipeline``, and implements
``load_sample(index)`` (the raw sample before the pipeline)."""
from __future__ import annotations

from typing import List

import numpy as np
from torch.utils.data import Dataset

__all__ = ['RecordsDataset']


class RecordsDataset(Dataset):
    """Base of ``VOCLayoutDataset`` and ``WSOLMetadata``."""

    records: list
    num_classes: int
    class_names: tuple

    def __len__(self) -> int:
        return len(self.records)

    @property
    def img_ids(self) -> List[str]:
        return [r.img_id for r in self.records]

    def labels_vector(self, class_ids) -> np.ndarray:
        """Multi-hot float32 vector of the 0-based ``class_ids``."""
        vec = np.zeros(self.num_classes, dtype=np.float32)
        vec[list(class_ids)] = 1.0
        return vec

    def load_sample(self, index: int) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict:
        return self.pipeline(self.load_sample(index))

    @property
    def metainfo(self) -> dict:
        return dict(classes=self.class_names, num_classes=self.num_classes)
