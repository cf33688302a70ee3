"""Helpers for tests of the core and of plugins (tiny data, tiny pipelines)."""
from .tiny import TINY_GENERATOR, tiny_data_cfg, tiny_pipeline_cfg

__all__ = ['TINY_GENERATOR', 'tiny_data_cfg', 'tiny_pipeline_cfg']
