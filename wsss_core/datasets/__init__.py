"""Datasets: the VOC directory layout reader, SyntheticShapes, transforms."""
from __future__ import annotations

from ..registry import DATASETS, build
from . import transforms  # noqa: F401  (registers the transforms)
from .voc_layout import SampleRecord, VOCLayoutDataset, read_cls_list, read_id_list


def build_dataset(data_cfg: dict, **overrides):
    """Build the run's dataset (the config's ``data`` dict) with per-stage ``overrides``.

    String options naming an item (``data_root='item:voc12-aug'``) are resolved to its path
    (:mod:`wsss_core.prepare.refs`)."""
    from ..config_errors import config_key
    from ..prepare.refs import resolve_path
    cfg = dict(data_cfg)
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    cfg = {k: resolve_path(v) for k, v in cfg.items()}
    with config_key('data', cfg=data_cfg):   # a bad option: ConfigBuildError naming `data`
        return build(cfg, DATASETS)


__all__ = ['build_dataset', 'SampleRecord', 'VOCLayoutDataset', 'read_cls_list', 'read_id_list']
