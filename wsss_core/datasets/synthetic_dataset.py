"""SyntheticShapes as a dataset: generated once into the cache, then read in the VOC layout."""
from __future__ import annotations

from typing import Optional, Sequence

from ..registry import DATASETS
from .generator_config import config_from_knobs
from .synthetic_shapes import CLASS_NAMES, SyntheticShapesConfig, ensure_generated
from .voc_layout import VOCLayoutDataset


def synthetic_config(**knobs) -> SyntheticShapesConfig:
    """Build the generator config, rejecting unknown knobs with the list of valid ones."""
    return config_from_knobs(SyntheticShapesConfig, 'SyntheticShapes', knobs)


@DATASETS.register_module()
class SyntheticShapes(VOCLayoutDataset):
    """The seeded synthetic WSSS data set (see ``wsss_core.datasets.synthetic_shapes``).

    Generator options (``image_size``, ``num_classes``, ``seed``, ``num_train``, ...) go in
    ``generator``; ``root`` overrides the cache directory ($WSSS_CACHE or ~/.cache/wsss).
    Saliency maps come with it (``saliency/``), so saliency-based refiners work out of the box.
    """

    def __init__(self, split: str = 'train', generator: Optional[dict] = None,
                 root: Optional[str] = None, workers: int = 2,
                 pipeline: Optional[Sequence] = None, max_samples: Optional[int] = None,
                 load_gt: bool = True, progress: bool = True):
        gen_cfg = synthetic_config(**(generator or {}))
        data_root = ensure_generated(gen_cfg, root=root, workers=workers, progress=progress)
        super().__init__(data_root=data_root, split=split, num_classes=gen_cfg.num_classes,
                         class_names=CLASS_NAMES[:gen_cfg.num_classes], img_suffix='.png',
                         saliency_dir='saliency', pipeline=pipeline, max_samples=max_samples,
                         load_gt=load_gt)
        self.generator_config = gen_cfg

    @classmethod
    def check_config(cls, cfg: dict) -> None:
        """Refuse generator knobs the generator refuses (``ValueError``), without generating:
        the pipeline calls it before any stage runs."""
        synthetic_config(**(cfg.get('generator') or {}))
