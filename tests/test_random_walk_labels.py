"""RandomWalkLabels stage: a boundary wall stops propagation, flip averaging, resume, artifacts.

The IRN stage is a finished fake: a stand-in model (test-only name) whose boundary map is a
fixed wall of grid columns, saved with its weights and a manifest like TrainIRN's.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from mmengine.config import Config
from torch import nn

from wsss_core.io import read_label_png, save_cam
from wsss_core.pipeline.manifest import write_manifest
import wsss_core.irn.random_walk_labels  # noqa: F401  (registers RandomWalkLabels)
from wsss_core.pipeline.stage import StageContext, StageError

SEED_COLS = 16          # CAM seed: image columns 0..15 of the first class
WALL = (5, 6)           # grid columns of the wall (pixels 20..27); symmetric under flip (w 12)


def _register_stand_in():
    from mmengine.model import BaseModel

    from wsss_core.registry import MODELS

    if MODELS.get('_RWTestWallIRN') is not None:
        return

    @MODELS.register_module(name='_RWTestWallIRN')
    class WallIRN(BaseModel):
        """boundary_map = gain * 1[grid column in wall]; records what it was given."""

        seen: list = []

        def __init__(self, wall=WALL):
            from wsss_core.models.data_preprocessor import NormalizeImages
            super().__init__(data_preprocessor=NormalizeImages())
            self.wall = tuple(wall)
            self.gain = nn.Parameter(torch.zeros(()))   # 0 until the saved weights load

        def boundary_map(self, img):
            type(self).seen.append(img.detach().clone())
            b, _, h, w = img.shape
            out = img.new_zeros((b, 1, math.ceil(h / 4), math.ceil(w / 4)))
            out[..., list(self.wall)] = 1.0
            return out * self.gain

        def forward(self, *args, **kwargs):  # not used by the stage
            raise NotImplementedError


@pytest.fixture
def stand_in(core_registered):
    _register_stand_in()
    from wsss_core.registry import MODELS
    cls = MODELS.get('_RWTestWallIRN')
    cls.seen.clear()
    return cls


def fake_stages(tmp_path, data_cfg, stand_in, wall=WALL):
    """Finished 'cams' (left-side seed of the first class) and 'irn' stages in tmp_path."""
    from wsss_core.datasets import build_dataset
    data = build_dataset(data_cfg, split='train', load_gt=False)
    for index, rec in enumerate(data.records):
        h, w = data.load_sample(index)['img'].shape[:2]
        cams = np.zeros((len(rec.class_ids), h, w), np.float32)
        if len(rec.class_ids):
            cams[0, :, :SEED_COLS] = 1.0
        save_cam(tmp_path / 'cams' / 'cams' / f'{rec.img_id}.npz', cams, rec.class_ids)
    write_manifest(tmp_path / 'cams', dict(artifacts=dict(
        cams='cams', split='train', num_classes=data.num_classes,
        class_names=list(data.class_names))))
    model = stand_in(wall=wall)
    with torch.no_grad():
        model.gain.fill_(1.0)
    (tmp_path / 'irn').mkdir()
    torch.save(model.state_dict(), tmp_path / 'irn' / 'model.pth')
    write_manifest(tmp_path / 'irn', dict(artifacts=dict(
        model=dict(type='_RWTestWallIRN', wall=list(wall)), weights='model.pth')))
    return data


def context(tmp_path, data_cfg, name='rw'):
    return StageContext(cfg=Config(dict(data=data_cfg)), work_dir=tmp_path,
                        stage_dir=tmp_path / name, progress=False)


def build_stage(**kw):
    from wsss_core.registry import STAGES, build
    return build(dict(type='RandomWalkLabels', name='rw', cams='cams', irn='irn', **kw), STAGES)


def test_wall_stops_propagation_and_rerun_skips(tmp_path, tiny_data_cfg, stand_in):
    data = fake_stages(tmp_path, tiny_data_cfg, stand_in)
    stage = build_stage(exp_times=6)
    assert stage.inputs() == ['cams', 'irn']
    ctx = context(tmp_path, tiny_data_cfg)
    record = stage.run(ctx)
    n = len(data)
    assert record['counts'] == dict(images=n, computed=n, reused=0)
    assert record['artifacts'] == dict(labels='labels', split='train',
                                       num_classes=data.num_classes,
                                       class_names=list(data.class_names), kinds=['label_set'])
    assert len(stand_in.seen) == n and all(x.shape[0] == 2 for x in stand_in.seen)  # img + flip
    for rec in data.records:
        label = read_label_png(tmp_path / 'rw' / 'labels' / f'{rec.img_id}.png', data.num_classes)
        first = rec.class_ids[0] + 1 if len(rec.class_ids) else 0
        assert (label[:, :20] == first).all()        # the seed fills its side of the wall
        assert (label[:, 28:] == 0).all()             # ... and nothing leaks across it
    # rerun: every file exists -> nothing recomputed, files untouched
    path = tmp_path / 'rw' / 'labels' / f'{data.records[0].img_id}.png'
    before = path.stat().st_mtime_ns
    assert stage.run(ctx)['counts'] == dict(images=n, computed=0, reused=n)
    assert path.stat().st_mtime_ns == before
    path.unlink()
    assert stage.run(ctx)['counts']['computed'] == 1 and path.is_file()


def test_without_the_wall_the_seed_spreads(tmp_path, tiny_data_cfg, stand_in):
    data = fake_stages(tmp_path, tiny_data_cfg, stand_in, wall=())
    build_stage(exp_times=4).run(context(tmp_path, tiny_data_cfg))
    rec = next(r for r in data.records if len(r.class_ids))
    label = read_label_png(tmp_path / 'rw' / 'labels' / f'{rec.img_id}.png')
    assert (label[:, 28:] == rec.class_ids[0] + 1).any()


def test_flip_averaged_boundary_is_normalised_and_mirrored(stand_in):
    from wsss_core.irn.random_walk_labels import flip_averaged_boundary
    model = stand_in(wall=(2,))                       # asymmetric wall on a 12-column grid
    with torch.no_grad():
        model.gain.fill_(1.0)
    img = np.random.default_rng(0).integers(0, 256, (20, 45, 3), dtype=np.uint8)
    b = flip_averaged_boundary(model, img)
    assert b.shape == (5, 12)
    expected = torch.zeros(5, 12)
    expected[:, 2] = 0.5
    expected[:, 9] = 0.5                              # column 2 of the mirrored image
    torch.testing.assert_close(b, expected)
    (x,) = stand_in.seen
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1) * 255
    ref = (torch.from_numpy(img).permute(2, 0, 1).float() - mean) / std
    torch.testing.assert_close(x[0], ref)
    torch.testing.assert_close(x[1], ref.flip(-1))


def test_stride4_cams_are_cell_means():
    from wsss_core.irn.random_walk_labels import stride4_cams
    cams = torch.rand(2, 9, 6, generator=torch.Generator().manual_seed(0))
    out = stride4_cams(cams)
    assert out.shape == (2, 3, 2)
    for k in range(2):
        for y in range(3):
            for x in range(2):
                cell = cams[k, 4 * y:4 * y + 4, 4 * x:4 * x + 4]
                assert out[k, y, x].item() == pytest.approx(cell.mean().item(), rel=1e-6)
    assert stride4_cams(torch.zeros(0, 9, 6)).shape == (0, 3, 2)


def test_irn_stage_without_boundary_map_is_an_error(tmp_path, tiny_data_cfg, stand_in):
    fake_stages(tmp_path, tiny_data_cfg, stand_in)
    from wsss_core.registry import MODELS
    if MODELS.get('_RWTestNoBoundary') is None:
        from mmengine.model import BaseModel

        @MODELS.register_module(name='_RWTestNoBoundary')
        class NoBoundary(BaseModel):
            def forward(self, *a, **k):
                raise NotImplementedError
    torch.save({}, tmp_path / 'irn' / 'empty.pth')
    write_manifest(tmp_path / 'irn', dict(artifacts=dict(model=dict(type='_RWTestNoBoundary'),
                                                         weights='empty.pth')))
    from wsss_core.models.protocols import ModelContractError
    with pytest.raises(ModelContractError, match=r"\[rw\] RandomWalkLabels \(irn='irn'\) needs "
                                                 r'a model with .*boundary_map.*NoBoundary has '
                                                 r'no boundary_map'):
        build_stage().run(context(tmp_path, tiny_data_cfg))


def test_bad_options_are_errors(core_registered):
    with pytest.raises(StageError, match='radius'):
        build_stage(radius=1)
    with pytest.raises(StageError, match='exp_times'):
        build_stage(exp_times=-1)
