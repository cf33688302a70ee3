"""The shipped MoANA configs load, name registered components, and the synthetic ones run."""
from __future__ import annotations

import numpy as np
import pytest

from wsss_core.io import read_label_png
from wsss_moana.testing import TINY_GENERATOR, registered  # noqa: F401 (fixture)


def load(name):
    from wsss_core.config import load_config
    return load_config(f'moana::{name}')


def shrink_wsss(cfg):
    """Tiny data, one epoch / a few iterations, inline CRF: the synthetic config's stages."""
    cfg.merge_from_dict({'data.generator': dict(TINY_GENERATOR), 'data.progress': False})
    for stage in cfg.stages:
        if stage['type'] == 'TrainClassifier':
            stage.update(max_epochs=1, batch_size=8, val_split=None)
        elif stage['type'] == 'TrainIRN':
            stage.update(max_epochs=1, batch_size=4, crop=48)
            stage['model']['radius'] = 4        # a 12 x 12 grid is too small for radius 10
        elif stage['type'] == 'TrainSegmentor':
            stage.update(max_iters=2, batch_size=4, crop_size=48)
        elif stage['type'] in ('RefineLabels', 'TestSegmentor'):
            stage.update(workers=0)
        if stage['type'] == 'RandomWalkLabels':
            stage.update(exp_times=3)
    return cfg


def test_synthetic_wsss_config_runs_both_arms_end_to_end(tmp_path, registered):
    from wsss_core.pipeline import Pipeline
    cfg = shrink_wsss(load('synthetic.py'))
    res = {r.name: r for r in Pipeline(cfg, tmp_path, progress=False).run()}
    for arm in ('base', 'moana'):
        labels = sorted((tmp_path / f'{arm}_rw_labels' / 'labels').glob('*.png'))
        assert len(labels) == TINY_GENERATOR['num_train']
        values = np.unique(np.concatenate([np.unique(read_label_png(p)) for p in labels]))
        assert set(values.tolist()) <= set(range(TINY_GENERATOR['num_classes'] + 1))
        for stage in (f'eval_{arm}_cams', f'eval_{arm}_ir_labels', f'eval_{arm}_rw_labels'):
            assert 0.0 <= res[stage].manifest['metrics']['miou'] <= 1.0, stage
        irn = res[f'{arm}_irn'].manifest
        assert irn['artifacts']['backbone_from'] == f'{arm}_classify'
        assert res[f'{arm}_test'].manifest['counts']['evaluated'] == TINY_GENERATOR['num_val']
    # the two arms differ only by the block: the MoANA arm's classifier has it, the other not
    import torch
    base = torch.load(tmp_path / 'base_classify' / 'model.pth', weights_only=True)
    moana = torch.load(tmp_path / 'moana_classify' / 'model.pth', weights_only=True)
    assert not any('moana' in k for k in base)
    assert set(moana) - set(base) == {k for k in moana if k.startswith('backbone.moana.')}
