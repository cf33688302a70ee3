"""Training samples with a label map: a dataset's images with pseudo labels or ground truth.

:class:`SegmentationSamples` wraps any VOC-layout dataset of the core (``records``,
``load_sample``, ``num_classes``) and adds the label map a segmentor learns from:

* ``label_dir`` given (e.g. a RefineLabels stage's ``labels/``): ``pseudo_seg`` read from
  ``<label_dir>/<img_id>.png`` (values 0..C and 255 checked, size checked against the image);
* otherwise the dataset's ground truth ``gt_seg`` (an image without a mask is an error
  naming it).

This works for every dataset of the core, including SyntheticShapes and VOCLayoutDataset,
which have no ``pseudo_label_dir`` option.  Then the transform ``pipeline`` runs (the
geometric transforms move ``pseudo_seg``/``gt_seg`` with the image), and with ``output_key``
the label is renamed for the model (``TrainIRN``: ``ir_label``).  Used by DeepLab's
``TrainSegmentor`` and by ``TrainIRN``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from torch.utils.data import Dataset

from ..io import DataFileError, read_label_png
from .transforms import Compose

__all__ = ['SegmentationSamples']


class SegmentationSamples(Dataset):
    """``dataset`` samples plus ``pseudo_seg`` (from ``label_dir``) or ``gt_seg``.

    Args:
        dataset: a core dataset (built without a pipeline).
        label_dir: folder of ``<img_id>.png`` pseudo labels, or None for ground truth.
        pipeline: transform configs (TRANSFORMS) or callables.
        output_key: rename the label map to this key after the pipeline (None: keep
            ``pseudo_seg`` / ``gt_seg``).
        what: how messages name the labels (``'pseudo label'``, ``'IR label'``).
    """

    def __init__(self, dataset, label_dir=None, pipeline: Optional[Sequence] = None,
                 output_key: Optional[str] = None, what: str = 'pseudo label'):
        self.dataset = dataset
        self.label_dir = Path(label_dir) if label_dir is not None else None
        self.label_key = 'pseudo_seg' if self.label_dir is not None else 'gt_seg'
        if self.label_dir is not None:
            missing = [r.img_id for r in dataset.records
                       if not (self.label_dir / f'{r.img_id}.png').is_file()]
            if missing:
                raise DataFileError(f'{what} not found: {self.label_dir / missing[0]}.png'
                                    + (f' (and {len(missing) - 1} more)' if len(missing) > 1
                                       else ''))
        self.pipeline = Compose(pipeline)
        self.output_key = output_key
        self.what = what
        self.num_classes = dataset.num_classes
        self.class_names = dataset.class_names

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def records(self):
        return self.dataset.records

    @property
    def metainfo(self) -> dict:
        return dict(getattr(self.dataset, 'metainfo', {}) or {}, label_key=self.label_key)

    def load_sample(self, index: int) -> dict:
        """The raw sample with its label map (before the pipeline)."""
        sample = self.dataset.load_sample(index)
        img_id = sample['img_id']
        if self.label_dir is not None:
            path = self.label_dir / f'{img_id}.png'
            label = read_label_png(path, self.num_classes)
            if label.shape != sample['img'].shape[:2]:
                raise DataFileError(f"{path}: {self.what} size {label.shape} differs from the "
                                    f"image's {sample['img'].shape[:2]}")
            sample['pseudo_seg'] = label
            sample.pop('gt_seg', None)
        elif 'gt_seg' not in sample:
            raise DataFileError(f'image {img_id} has no ground-truth mask to train on; give '
                                'the segmentor a pseudo-label stage (labels=...)')
        return sample

    def __getitem__(self, index: int) -> dict:
        out = self.pipeline(self.load_sample(index))
        if self.output_key is not None and self.label_key in out:
            out[self.output_key] = out.pop(self.label_key)
        return out
