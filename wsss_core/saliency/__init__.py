"""Saliency sources (SALIENCY_SOURCES): maps on disk, the dataset's own, OpenCV estimators."""
from .base import SaliencySource, check_saliency, to_uint8
from .from_dataset import SaliencyFromDataset
from .from_disk import SaliencyFromDisk
from .opencv import FineGrainedSaliency, SpectralResidualSaliency

__all__ = ['SaliencySource', 'check_saliency', 'to_uint8', 'SaliencyFromDisk',
           'SaliencyFromDataset', 'SpectralResidualSaliency', 'FineGrainedSaliency']
