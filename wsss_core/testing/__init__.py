"""Helpers for tests of the core and of plugins (tiny data, tiny pipelines)."""
from .process import isolate_test_process
from .tiny import TINY_GENERATOR, tiny_classify_stage, tiny_data_cfg, tiny_pipeline_cfg

__all__ = ['TINY_GENERATOR', 'isolate_test_process', 'tiny_classify_stage', 'tiny_data_cfg',
           'tiny_pipeline_cfg']
