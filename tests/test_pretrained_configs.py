"""Every shipped ``*_pretrained.py`` config really starts its networks from the pretrained
weights: for each training stage that names ``pretrained_from``, the model the stage builds
(CAM classifier, OAA / NSROM / EDAM / MoANA classifier, the relation network, GETAM,
DeepLab) holds the Pretrain stage's weights at ``pretrained_key`` after its construction
*and* after mmengine's ``init_weights()``, which the Runner calls before training (a module
that re-initialised itself there would silently train from scratch)."""
from __future__ import annotations

import pytest
import torch

CONFIGS = ['core::quickstart_pretrained.py', 'deeplab::synthetic_pretrained.py',
           'nsrom::synthetic_pretrained.py', 'edam::synthetic_pretrained.py',
           'moana::synthetic_pretrained.py', 'getam::synthetic_pretrained.py',
           'getam::synthetic_hybrid_pretrained.py']


@pytest.fixture(scope='module')
def plugins():
    from wsss_core.plugin_loader import load_plugins
    load_plugins()


@pytest.mark.parametrize('spec', CONFIGS)
def test_every_pretrained_stage_starts_from_the_pretrained_weights(spec, plugins, tmp_path):
    from wsss_core.config import load_config
    from wsss_core.models.weights import pretrained_state_dict
    from wsss_core.pipeline.artifacts import PRETRAINED
    from wsss_core.pipeline.checksums import file_digest
    from wsss_core.pipeline.manifest import write_manifest
    from wsss_core.pipeline.pipeline import Pipeline
    from wsss_core.pipeline.stage import StageContext
    from wsss_core.registry import MODELS, build
    torch.set_num_threads(1)
    cfg = load_config(spec)
    stages = Pipeline._build_stages(cfg['stages'])
    by_name = {s.name: s for s in stages}
    users = [s for s in stages if s.options.get('pretrained_from')]
    assert users, f'{spec} starts no stage from pretrained weights'
    weights = {}
    for stage in users:
        source = by_name[stage.options['pretrained_from']]
        if source.name not in weights:         # "pretrained" weights: a seeded random init
            torch.manual_seed(1)
            backbone = build(dict(source.backbone_config), MODELS)
            path = tmp_path / f'{source.name}.pth'
            torch.save(pretrained_state_dict(backbone), path)
            write_manifest(tmp_path / source.name, dict(artifacts=PRETRAINED.record(
                path, dict(source.backbone_config), file_digest(path))))
            weights[source.name] = pretrained_state_dict(backbone)
        ctx = StageContext(cfg=cfg, work_dir=tmp_path, stage_dir=tmp_path / stage.name)
        model_cfg = stage.with_pretrained_backbone(ctx, stage.model_cfg(6))
        torch.manual_seed(2)                   # another init: only the file can match
        model = build(model_cfg, MODELS)
        model.init_weights()
        got = pretrained_state_dict(model.get_submodule(stage.options['pretrained_key']))
        expected = weights[source.name]
        same_shape = [k for k, v in expected.items() if k in got and got[k].shape == v.shape]
        assert len(same_shape) >= len(expected) - 1, (stage.name, len(same_shape), len(expected))
        for key in same_shape:
            if expected[key].is_floating_point() and expected[key].numel() > 1:
                assert torch.equal(got[key], expected[key]), f'{spec} {stage.name}: {key}'
