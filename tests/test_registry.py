"""Registry scope, and a stage added from outside the core running in a pipeline."""
from __future__ import annotations

import torch.nn as nn
from mmengine import registry as mme
from mmengine.config import Config

from wsss_core import registry
from wsss_core.pipeline import Pipeline, Stage


def test_core_registries_are_scoped_children_of_mmengine_roots():
    assert registry.MODELS.scope == 'wsss_core' and registry.MODELS.parent is mme.MODELS
    assert registry.STAGES.scope == registry.CAM_GENERATORS.scope == 'wsss_core'


def test_mmengine_root_builds_our_components_under_the_default_scope():
    @registry.MODELS.register_module()
    class _ScopeProbeNet(nn.Module):
        pass

    with mme.DefaultScope.overwrite_default_scope('wsss_core'):
        assert isinstance(mme.MODELS.build(dict(type='_ScopeProbeNet')), _ScopeProbeNet)
    assert registry.build(dict(type='_ScopeProbeNet'), registry.MODELS).__class__ is _ScopeProbeNet


@registry.STAGES.register_module()
class _CountImages(Stage):
    """A stage from 'outside' the core: counts the images of a split."""

    def __init__(self, name, split='train'):
        super().__init__(name, split=split)

    def run(self, ctx):
        from wsss_core.datasets import build_dataset
        n = len(build_dataset(ctx.data_cfg, split=self.options['split'], load_gt=False))
        (ctx.stage_dir / 'count.txt').write_text(str(n))
        return dict(metrics=dict(images=n))


def test_an_externally_registered_stage_runs_in_a_pipeline(tmp_path, tiny_data_cfg):
    cfg = Config(dict(data=tiny_data_cfg, stages=[dict(type='_CountImages', name='count',
                                                       split='val')]))
    res = Pipeline(cfg, tmp_path, progress=False).run()
    assert res[0].manifest['metrics']['images'] == 8
    assert (tmp_path / 'count' / 'count.txt').read_text() == '8'
