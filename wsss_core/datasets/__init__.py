"""Datasets: the VOC directory layout reader, SyntheticShapes, transforms."""
from __future__ import annotations

from ..registry import DATASETS, build
from . import transforms  # noqa: F401  (registers the transforms)
from .voc_layout import SampleRecord, VOCLayoutDataset, read_cls_list, read_id_list


def build_dataset(data_cfg: dict, **overrides):
    """Build the run's dataset (the config's ``data`` dict) with per-stage ``overrides``."""
    cfg = dict(data_cfg)
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return build(cfg, DATASETS)


__all__ = ['build_dataset', 'SampleRecord', 'VOCLayoutDataset', 'read_cls_list', 'read_id_list']
