"""TrainIRN on tiny SyntheticShapes: IR labels from a finished labels stage, joint transforms,
the backbone copied from a classifier stage, and the trained model rebuilt for inference."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config

from wsss_core.io import DataFileError, save_label_png
from wsss_core.pipeline import Pipeline, StageError
from wsss_core.pipeline.stage import StageContext

TINY_LEVELS = dict(type='TimmFeatureLevels', model_name='resnet18', channels=(8, 16, 32, 64))
TINY_IRN = dict(type='InterPixelRelationNet', radius=3, backbone=TINY_LEVELS,
                boundary_widths=(4,) * 5, displacement_widths=(4, 4, 8, 8, 8),
                displacement_fuse_width=8)


def ir_label_of(gt: np.ndarray) -> np.ndarray:
    """A stand-in IR label: the mask with its top four rows unsure (255)."""
    label = gt.copy()
    label[:4] = 255
    return label


def stub_backbone_state(extra: bool = True) -> dict:
    """What a classifier stage's model.pth holds for a TimmFeatureLevels-like backbone."""
    from wsss_core.irn.model import TimmFeatureLevels
    torch.manual_seed(123)
    levels = TimmFeatureLevels(**{k: v for k, v in TINY_LEVELS.items() if k != 'type'})
    state = {f'backbone.{k}': v for k, v in levels.state_dict().items()}
    if extra:
        state['backbone.attention.weight'] = torch.ones(3)    # a CAM-only block
        state['classifier.weight'] = torch.ones(3, 64, 1, 1)
    return state


@pytest.fixture(scope='module')
def stub_stages():
    from wsss_core.components import register_core_components
    from wsss_core.datasets import build_dataset
    from wsss_core.io import atomic_write
    from wsss_core.irn import model, train_irn  # noqa: F401  (register the IRN model, TrainIRN)
    from wsss_core.pipeline import stage  # noqa: F401
    from wsss_core.pipeline.artifacts import LABEL_SET, TRAINED_MODEL
    from wsss_core.registry import STAGES
    register_core_components()

    if STAGES.get('_StubIRLabels') is None:
        @STAGES.register_module(name='_StubIRLabels')
        class StubIRLabels(stage.Stage):
            """A finished RefineLabels stand-in: ``labels/<id>.png`` = :func:`ir_label_of`."""
            produces = (LABEL_SET,)

            def run(self, ctx):
                data = build_dataset(ctx.data_cfg, split='train', load_gt=True)
                for i in range(len(data)):
                    sample = data.load_sample(i)
                    save_label_png(ctx.stage_dir / 'labels' / f"{sample['img_id']}.png",
                                   ir_label_of(sample['gt_seg']))
                return dict(counts=dict(images=len(data)),
                            artifacts=dict(labels='labels', split='train',
                                           num_classes=data.num_classes,
                                           class_names=list(data.class_names)))

        @STAGES.register_module(name='_StubClassifier')
        class StubClassifier(stage.Stage):
            """A finished TrainClassifier stand-in whose model.pth holds a tiny backbone."""
            produces = (TRAINED_MODEL,)

            def run(self, ctx):
                with atomic_write(ctx.stage_dir / 'model.pth') as fh:
                    torch.save(stub_backbone_state(), fh)
                return dict(artifacts=dict(weights='model.pth', model=dict(type='CAMClassifier')))


def irn_cfg(data_cfg, **irn_options) -> dict:
    options = dict(type='TrainIRN', name='irn', labels='ir_labels', model=dict(TINY_IRN),
                   crop=48, batch_size=8, max_epochs=1, log_interval=1)
    options.update(irn_options)
    return dict(seed=0, data=data_cfg,
                stages=[dict(type='_StubIRLabels', name='ir_labels'),
                        dict(type='_StubClassifier', name='cam_net'), options])


def run(cfg, work_dir):
    return {r.name: r for r in Pipeline(Config(cfg), work_dir, progress=False).run()}


def test_train_irn_then_load_and_compute_boundaries(tmp_path, tiny_data_cfg, stub_stages):
    from mmengine.runner import set_random_seed

    from wsss_core.datasets import build_dataset
    from wsss_core.pipeline.artifacts import TRAINED_MODEL
    from wsss_core.registry import MODELS, build
    cfg = irn_cfg(tiny_data_cfg, backbone_from='cam_net')
    res = run(cfg, tmp_path)
    manifest = res['irn'].manifest
    art, counts = manifest['artifacts'], manifest['counts']
    assert art['weights'] == 'model.pth' and art['model']['type'] == 'InterPixelRelationNet'
    assert art['backbone_from'] == 'cam_net' and art['trained_on'] == 'ir_labels'
    assert counts['train_images'] == 16 and counts['backbone_unused'] == 1
    assert set(manifest['inputs']) == {'ir_labels', 'cam_net'}

    ctx = StageContext(cfg=Config(cfg), work_dir=tmp_path, stage_dir=tmp_path / 'irn')
    model = TRAINED_MODEL.read(ctx, 'irn', 'test', 'irn').load()
    source = stub_backbone_state(extra=False)
    backbone = model.backbone.state_dict()
    assert counts['backbone_copied'] == len(backbone)
    for k, v in backbone.items():                      # copied from the classifier, then frozen
        assert torch.equal(v, source[f'backbone.{k}']), k
    set_random_seed(0)
    initial = build(art['model'], MODELS)              # the stage's initial weights (seed 0)
    trained = model.boundary_branch.state_dict()
    assert any(not torch.equal(trained[k], v) for k, v in
               initial.boundary_branch.state_dict().items())

    sample = build_dataset(tiny_data_cfg, split='train', load_gt=False).load_sample(0)
    img = torch.from_numpy(sample['img']).permute(2, 0, 1)[None]
    with torch.no_grad():
        boundary = model.boundary_map(model.data_preprocessor.normalize(img))
    assert boundary.shape == (1, 1, 12, 12)
    assert ((boundary >= 0) & (boundary <= 1)).all()

    again = run(cfg, tmp_path)                          # finished: skipped
    assert again['irn'].status == 'skipped'


class _CodedImages:
    """A dataset whose red channel encodes the label (60 x label), to check alignment."""
    num_classes, class_names = 3, ('a', 'b', 'c')

    def __init__(self, n=4, size=(30, 26)):
        rng = np.random.default_rng(0)
        self.labels = [np.kron(rng.integers(0, 4, (size[0] // 2, size[1] // 2)),
                               np.ones((2, 2), np.int64)).astype(np.uint8) for _ in range(n)]
        self.img_ids = [f'im{i}' for i in range(n)]
        self.records = [SimpleNamespace(img_id=i) for i in self.img_ids]

    def __len__(self):
        return len(self.img_ids)

    def load_sample(self, i):
        img = np.zeros(self.labels[i].shape + (3,), np.uint8)
        img[..., 0] = self.labels[i] * 60 + 10
        return dict(img_id=self.img_ids[i], img=img, labels=np.ones(3, np.float32))


def test_joint_transforms_move_the_ir_label_with_the_image(tmp_path):
    from wsss_core.irn.train_irn import IRLabelSamples, irn_train_pipeline
    data = _CodedImages()
    for img_id, label in zip(data.img_ids, data.labels):
        save_label_png(tmp_path / f'{img_id}.png', label)
    torch.manual_seed(0)
    samples = IRLabelSamples(data, tmp_path, irn_train_pipeline(crop=40, rescale=None))
    flips = 0
    for k in range(12):
        out = samples[k % len(data)]
        assert set(out) == {'img_id', 'img', 'ir_label'}
        img, label = out['img'], out['ir_label']
        assert img.shape == (3, 40, 40) and label.shape == (40, 40)
        inside = label != 255
        assert inside.sum() == 30 * 26                   # the whole image, the rest is padding
        assert torch.equal(img[0][inside].long(), label[inside] * 60 + 10)
        assert (img[0][~inside] == 124).all()            # padded with the mean colour
        original = torch.from_numpy(data.labels[k % len(data)]).long()
        rows, cols = inside.any(1).nonzero()[:, 0], inside.any(0).nonzero()[:, 0]
        crop = label[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        flips += int(not torch.equal(crop, original))
        assert torch.equal(crop, original) or torch.equal(crop.flip(-1), original)
    assert 0 < flips < 12
    rescaled = IRLabelSamples(data, tmp_path, irn_train_pipeline(crop=20))[0]
    assert rescaled['ir_label'].shape == (20, 20)


def test_missing_labels_and_bad_options_are_refused(tmp_path, tiny_data_cfg, stub_stages):
    from wsss_core.irn.train_irn import IRLabelSamples, TrainIRN, copy_backbone
    data = _CodedImages(n=3)
    save_label_png(tmp_path / 'im0.png', data.labels[0])
    with pytest.raises(DataFileError, match=r'im1\.png \(and 1 more\)'):
        IRLabelSamples(data, tmp_path)
    with pytest.raises(StageError, match='no validation'):
        TrainIRN('irn', labels='x', val_split='val')
    with pytest.raises(StageError, match='labels must name'):
        TrainIRN('irn', labels=None)

    run(dict(irn_cfg(tiny_data_cfg), stages=irn_cfg(tiny_data_cfg)['stages'][:2]), tmp_path)
    ctx = StageContext(cfg=Config(irn_cfg(tiny_data_cfg)), work_dir=tmp_path,
                       stage_dir=tmp_path / 'irn')
    from wsss_core.registry import MODELS, build
    wider = build(dict(TINY_IRN, backbone=dict(TINY_LEVELS, channels=(16, 16, 32, 64))), MODELS)
    from wsss_core.pipeline.artifacts import TRAINED_MODEL
    with pytest.raises(StageError, match='does not fit the IRN backbone'):
        copy_backbone(TRAINED_MODEL.read(ctx, 'cam_net', 'irn', 'backbone_from'), wider)
    with pytest.raises(StageError, match=r"backbone_from='ir_labels'.*did not record a trained"):
        TRAINED_MODEL.read(ctx, 'ir_labels', 'irn', 'backbone_from')


@pytest.mark.filterwarnings('ignore:Detected call of `scheduler.step')   # no optimiser steps
def test_optimiser_groups_and_poly_schedule(core_registered):
    """Boundary branch lr x1, displacement branch x10, weight decay and momentum 1e-4 (the
    reference's effective values); lr_t = lr_0 (1 - t / T)^0.9."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import PARAM_SCHEDULERS

    from wsss_core.irn import model  # noqa: F401
    from wsss_core.pipeline.schedules import poly_schedule
    from wsss_core.irn.train_irn import irn_optim_wrapper
    from wsss_core.registry import MODELS, build
    model = build(dict(TINY_IRN), MODELS)
    wrapper = build_optim_wrapper(model, irn_optim_wrapper())
    group_of = {id(p): g for g in wrapper.optimizer.param_groups for p in g['params']}
    for p in model.boundary_branch.parameters():
        assert group_of[id(p)]['lr'] == pytest.approx(0.1)
    for p in model.displacement_branch.parameters():
        assert group_of[id(p)]['lr'] == pytest.approx(1.0)
    assert all(g['weight_decay'] == pytest.approx(1e-4) and g['momentum'] == pytest.approx(1e-4)
               for g in wrapper.optimizer.param_groups)
    total = 10
    sched = PARAM_SCHEDULERS.build(dict(poly_schedule(total)[0], optimizer=wrapper))
    probe = next(model.displacement_branch.parameters())
    for t in range(total):
        assert group_of[id(probe)]['lr'] == pytest.approx(1.0 * (1 - t / total) ** 0.9), t
        sched.step()
