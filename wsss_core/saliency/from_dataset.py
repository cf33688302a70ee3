"""The dataset's own saliency map: ``sample['saliency']`` (SyntheticShapes ships one per image,
a VOC-layout dataset reads ``saliency_dir``)."""
from __future__ import annotations

import numpy as np

from ..registry import SALIENCY_SOURCES
from .base import SaliencySource, check_saliency


@SALIENCY_SOURCES.register_module()
class SaliencyFromDataset(SaliencySource):
    """Return the map the dataset put in the sample; it cannot look an image up by id alone."""

    needs = ('saliency',)

    def __call__(self, img_id: str, img: np.ndarray) -> np.ndarray:
        raise TypeError(f'SaliencyFromDataset has no map of its own for {img_id}: it returns '
                        "the dataset's sample['saliency'] through from_sample(sample); to read "
                        'maps by id use SaliencyFromDisk(root=...)')

    def from_sample(self, sample: dict) -> np.ndarray:
        sal = sample.get('saliency')
        if sal is None:
            raise KeyError(f"image {sample.get('img_id')}: the dataset provides no saliency map "
                           '(set saliency_dir, or use SaliencyFromDisk / an OpenCV estimator)')
        img = sample.get('img')
        shape = img.shape[:2] if img is not None else np.asarray(sal).shape
        return check_saliency(sal, shape, f"saliency of {sample.get('img_id')} (dataset)")

    def __repr__(self) -> str:
        return 'SaliencyFromDataset()'
