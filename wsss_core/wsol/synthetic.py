"""SyntheticShapesWSOL: SyntheticShapes as a weakly supervised object localisation data set.

WSOL needs one class per image and boxes.  The generated SyntheticShapes data set (see
:mod:`wsss_core.datasets.synthetic_shapes`) is exported once, with :func:`~.metadata.export_wsol_metadata`,
into the wsolevaluation metadata layout next to it (``<dataset dir>/wsol``): the images whose
objects all belong to one class, with GT boxes = the bounding boxes of the 8-connected
components of that class's mask, and the masks for PxAP.  SyntheticShapes' ``train`` split
becomes the WSOL ``train`` split (weak labels) and its ``val`` split the WSOL ``val`` split.
The export is written into a temporary sibling and renamed into place when complete (under
the generator's lock), so an interrupted export is redone, never half-read.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from ..datasets.cache_publish import exclusive_lock
from ..datasets.synthetic_dataset import SyntheticShapes
from ..registry import DATASETS
from .metadata import WSOLMetadata, export_wsol_metadata

WSOL_NAME = 'SyntheticShapes'
EXPORT_DIR = 'wsol'
SPLITS = ('train', 'val')


def ensure_wsol_export(generator: Optional[dict], root=None, workers: int = 2,
                       progress: bool = True) -> Path:
    """Generate SyntheticShapes (if needed) and its WSOL export; return the export's root."""
    source = {s: SyntheticShapes(split=s, generator=generator, root=root, workers=workers,
                                 progress=progress) for s in SPLITS}
    final = Path(source['train'].data_root) / EXPORT_DIR
    done = final / 'metadata' / WSOL_NAME / 'class_names.txt'
    if done.is_file():
        return final
    with exclusive_lock(final.parent / f'.{EXPORT_DIR}.lock'):
        if done.is_file():
            return final
        shutil.rmtree(final, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f'.{EXPORT_DIR}.partial-', dir=final.parent))
        try:
            for split in SPLITS:
                export_wsol_metadata(source[split], tmp, WSOL_NAME, split)
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


@DATASETS.register_module()
class SyntheticShapesWSOL(WSOLMetadata):
    """The single-class images of SyntheticShapes with boxes and masks (see the module doc).

    Args:
        split: ``'train'`` or ``'val'``.
        generator / root / workers: as :class:`~.synthetic_dataset.SyntheticShapes`.
        pipeline, max_samples, load_gt: as :class:`~.metadata.WSOLMetadata`.
    """

    def __init__(self, split: str = 'train', generator: Optional[dict] = None, root=None,
                 workers: int = 2, pipeline: Optional[Sequence] = None,
                 max_samples: Optional[int] = None, load_gt: bool = True,
                 progress: bool = True):
        if split not in SPLITS:
            raise ValueError(f'SyntheticShapesWSOL has the splits {SPLITS}, not {split!r}')
        export = ensure_wsol_export(generator, root=root, workers=workers, progress=progress)
        super().__init__(export, WSOL_NAME, split=split, pipeline=pipeline,
                         max_samples=max_samples, load_gt=load_gt)
