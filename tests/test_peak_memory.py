"""Per-stage peak memory in the manifests (``peak_memory_mb``)."""
from __future__ import annotations

import time

import numpy as np

from wsss_core.pipeline.memory import PeakMemory


def test_peak_memory_sees_a_short_lived_allocation():
    with PeakMemory(interval=0.02) as quiet:
        time.sleep(0.1)
    with PeakMemory(interval=0.02) as busy:
        block = np.ones(200 * 2 ** 20 // 8)          # 200 MiB, touched
        time.sleep(0.1)
        del block
    assert busy.record()['rss'] - quiet.record()['rss'] > 150


def test_every_stage_manifest_records_its_peak_memory(tmp_path, tiny_data_cfg):
    from mmengine.config import Config
    from wsss_core.pipeline import Pipeline
    from wsss_core.testing import tiny_pipeline_cfg
    cfg = Config(tiny_pipeline_cfg(tiny_data_cfg))
    for result in Pipeline(cfg, tmp_path, progress=False).run():
        assert result.manifest['peak_memory_mb']['rss'] > 10, result.name
