"""The integral attention model (OAA+): loss, model, target loading and training stage."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from mmengine.config import Config

from wsss_oaa.testing import TINY_BACKBONE, TINY_GENERATOR, registered  # noqa: F401 (fixture)


def softplus(z: float) -> float:
    return math.log(1.0 + math.exp(z))


# 2x2 example: x scores, t targets (one position with t = 0.0005, between 0 and 1e-3)
X = [[2.0, -1.0], [0.5, -3.0]]
T = [[0.8, 0.0005], [0.0, 0.3]]


def tensors(x=X, t=T):
    return torch.tensor([[x]], dtype=torch.float32), torch.tensor([[t]], dtype=torch.float32)


# ----------------------------------------------------------------------------- loss
def test_pytorch_form_by_hand():
    from wsss_oaa.integral_attention import integral_attention_loss
    # P = {t > 1e-3} = {(0,0): 0.8, (1,1): 0.3};  N = {(0,1): x=-1, (1,0): x=0.5}
    # -t log sigma(x) = t log(1 + e^-x);  -log(1 - sigma(x) + 1e-8)
    pos = (0.8 * math.log(1 + math.exp(-2.0)) + 0.3 * math.log(1 + math.exp(3.0))) / 2
    neg = (-math.log(1 - 1 / (1 + math.exp(1.0)) + 1e-8)
           - math.log(1 - 1 / (1 + math.exp(-0.5)) + 1e-8)) / 2
    assert pos + neg == pytest.approx(1.1517286229, abs=1e-9)  # the hand numbers themselves
    loss = integral_attention_loss(*tensors(), form='pytorch')
    assert loss.item() == pytest.approx(pos + neg, rel=1e-6)


def test_caffe_form_by_hand():
    from wsss_oaa.integral_attention import integral_attention_loss
    # P = {t > 0}: the 0.0005 position is positive here;  N = {t == 0} = {(1,0): x=0.5}
    pos = (0.8 * softplus(-2.0) + 0.0005 * softplus(1.0) + 0.3 * softplus(3.0)) / 3
    neg = softplus(0.5)
    assert pos + neg == pytest.approx(1.3130020659, abs=1e-9)
    loss = integral_attention_loss(*tensors(), form='caffe')
    assert loss.item() == pytest.approx(pos + neg, rel=1e-6)


def test_threshold_option_moves_positions_between_sets():
    from wsss_oaa.integral_attention import integral_attention_loss
    # threshold 0.5: P = {0.8}, N = the three others (x = -1, 0.5, -3)
    pos = 0.8 * softplus(-2.0)
    neg = sum(-math.log(1 - 1 / (1 + math.exp(-x)) + 1e-8) for x in (-1.0, 0.5, -3.0)) / 3
    loss = integral_attention_loss(*tensors(), form='pytorch', threshold=0.5)
    assert loss.item() == pytest.approx(pos + neg, rel=1e-6)


@pytest.mark.parametrize('form', ['pytorch', 'caffe', 'nsrom'])
def test_empty_positive_set_leaves_only_the_negative_term(form):
    from wsss_oaa.integral_attention import integral_attention_loss
    x, t = tensors(t=[[0.0, 0.0], [0.0, 0.0]])
    xs = [2.0, -1.0, 0.5, -3.0]
    expected = sum(softplus(v) for v in xs) / 4  # -log(1 - sigma) = softplus; 1e-8 negligible
    loss = integral_attention_loss(x, t, form=form)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize('form', ['pytorch', 'caffe', 'nsrom'])
def test_empty_negative_set_leaves_only_the_positive_term(form):
    from wsss_oaa.integral_attention import integral_attention_loss
    x, t = tensors(t=[[1.0, 0.5], [0.25, 0.1]])
    expected = (1.0 * softplus(-2.0) + 0.5 * softplus(1.0) + 0.25 * softplus(-0.5)
                + 0.1 * softplus(3.0)) / 4
    loss = integral_attention_loss(x, t, form=form)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_forms_differ_only_in_the_negative_cap_for_large_scores():
    from wsss_oaa.integral_attention import integral_attention_loss
    x, t = tensors(x=[[50.0, -200.0], [0.0, 0.0]], t=[[0.0, 1.0], [0.0, 1.0]])
    # positive term stable at x = -200: (200 + log 2) / 2; negatives x = 50 and 0
    pos = (200.0 + math.log(2.0)) / 2
    pytorch = integral_attention_loss(x, t, form='pytorch')
    caffe = integral_attention_loss(x, t, form='caffe')
    # sigma(50) == 1 in float32: -log(1e-8) = 18.42 (the reference's cap); exact softplus: 50
    assert pytorch.item() == pytest.approx(pos + (-math.log(1e-8) + math.log(2.0)) / 2,
                                           rel=1e-5)
    assert caffe.item() == pytest.approx(pos + (50.0 + math.log(2.0)) / 2, rel=1e-6)


def nsrom_negative(x: float) -> float:
    """NSROM's per-pixel negative term, -log(exp(-max(x, 0)) + 1e-8) + log(1 + exp(-|x|))."""
    return -math.log(math.exp(-max(x, 0.0)) + 1e-8) + math.log(1.0 + math.exp(-abs(x)))


def test_nsrom_form_by_hand_near_its_saturation():
    from wsss_oaa.integral_attention import integral_attention_loss
    # negatives x = 15 and x = 40 (t == 0), positives x = 2 (t = .8) and x = -1 (t = .0005)
    x = torch.tensor([[[[15.0, 40.0], [2.0, -1.0]]]], requires_grad=True)
    t = torch.tensor([[[[0.0, 0.0], [0.8, 0.0005]]]])
    at15 = -math.log(math.exp(-15.0) + 1e-8) + math.log1p(math.exp(-15.0))
    at40 = -math.log(math.exp(-40.0) + 1e-8) + math.log1p(math.exp(-40.0))
    assert at15 == pytest.approx(14.96783, abs=1e-5) and softplus(15.0) - at15 > 0.03
    assert at40 == pytest.approx(18.420681, abs=1e-6)                  # -log(1e-8): saturated
    pos = (0.8 * softplus(-2.0) + 0.0005 * softplus(1.0)) / 2
    loss = integral_attention_loss(x, t, form='nsrom')
    assert loss.item() == pytest.approx(pos + (at15 + at40) / 2, rel=1e-6)
    loss.backward()
    # d/dx of the negative term: e^-x / (e^-x + 1e-8) - e^-x / (1 + e^-x), over |N| = 2
    grad15 = (math.exp(-15) / (math.exp(-15) + 1e-8) - math.exp(-15) / (1 + math.exp(-15))) / 2
    grad40 = (math.exp(-40) / (math.exp(-40) + 1e-8)) / 2
    assert grad15 == pytest.approx(0.48417, abs=1e-5) and grad40 < 1e-9
    assert x.grad[0, 0, 0, 0].item() == pytest.approx(grad15, rel=1e-4)
    assert abs(x.grad[0, 0, 0, 1].item() - grad40) < 1e-9
    # the caffe form (softplus) is not saturated: gradient sigma(x) / 2 = 0.5 at x = 40
    x2 = x.detach().clone().requires_grad_(True)
    integral_attention_loss(x2, t, form='caffe').backward()
    assert x2.grad[0, 0, 0, 1].item() == pytest.approx(0.5, rel=1e-6)


def test_nsrom_form_matches_the_rule_for_negative_and_small_scores():
    from wsss_oaa.integral_attention import integral_attention_loss
    xs = [-30.0, -3.0, -0.5, 0.0, 0.5, 3.0]
    x = torch.tensor([[xs]])
    t = torch.zeros_like(x)
    expected = sum(nsrom_negative(v) for v in xs) / len(xs)
    assert integral_attention_loss(x, t, form='nsrom').item() == pytest.approx(expected,
                                                                               rel=1e-6)


def test_loss_checks_its_arguments_and_keeps_the_graph():
    from wsss_oaa.integral_attention import integral_attention_loss
    x, t = tensors()
    x.requires_grad_(True)
    integral_attention_loss(x, t).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match='form'):
        integral_attention_loss(x, t, form='tf')
    with pytest.raises(ValueError, match='shape'):
        integral_attention_loss(x, t[..., :1])


# ----------------------------------------------------------------------------- model
def tiny_iam(**kwargs):
    from wsss_core.registry import MODELS, build
    torch.manual_seed(0)
    return build(dict(type='IntegralAttentionModel', num_classes=3, backbone=dict(TINY_BACKBONE),
                      head_channels=16, **kwargs), MODELS)


def test_model_loss_with_targets_of_the_output_size(registered):
    from wsss_oaa.integral_attention import integral_attention_loss
    model = tiny_iam()
    img = torch.randn(2, 3, 48, 48)
    target = torch.rand(2, 3, 6, 6) * (torch.rand(2, 3, 6, 6) > 0.5)
    losses = model(img, torch.ones(2, 3), mode='loss', attention=target)
    assert set(losses) == {'loss_iam'}
    with torch.no_grad():
        expected = integral_attention_loss(model.cam_logits(img), target)
    assert losses['loss_iam'].item() == pytest.approx(expected.item(), rel=1e-6)
    losses['loss_iam'].backward()
    assert model.classifier[-1].weight.grad.abs().sum() > 0


def test_model_resizes_targets_bilinearly_to_the_output(registered):
    model = tiny_iam(loss_weight=5.0)
    img = torch.randn(1, 3, 48, 48)
    # a constant target stays constant under bilinear resizing: every position is positive
    target = torch.full((1, 3, 12, 12), 0.5)
    loss = model(img, mode='loss', attention=target)['loss_iam']
    with torch.no_grad():
        out = model.cam_logits(img)
    assert out.shape == (1, 3, 6, 6)
    expected = 5.0 * (-0.5 * torch.nn.functional.logsigmoid(out)).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # a non-constant target: the 6x6 bilinear (align_corners=False) average of 2x2 blocks
    target = torch.zeros(1, 3, 12, 12)
    target[:, :, :2, :2] = 1.0
    resized = model.match_target(target, out)
    assert resized.shape == out.shape
    assert resized[0, 0, 0, 0].item() == pytest.approx(1.0)
    assert resized[0, 0, 1:, 1:].abs().max().item() == 0.0


def test_model_modes_and_errors(registered):
    model = tiny_iam(loss_form='caffe')
    img = torch.randn(2, 3, 48, 48)
    assert model(img).shape == (2, 3)                        # tensor: pooled logits
    assert model.cam_logits(img).shape == (2, 3, 6, 6)       # raw output (the IAM map)
    with pytest.raises(ValueError, match='attention'):
        model(img, mode='loss')
    with pytest.raises(ValueError, match='class counts'):
        model(img, mode='loss', attention=torch.zeros(2, 4, 6, 6))
    with pytest.raises(ValueError, match='drop_mask'):
        model(img, mode='loss', attention=torch.zeros(2, 3, 6, 6),
              drop_mask=torch.zeros(2, 1, 48, 48))
    with pytest.raises(ValueError, match='loss_form'):
        tiny_iam(loss_form='mse')


# ----------------------------------------------------------------------------- targets
def test_load_attention_targets(tmp_path, registered):
    from wsss_core.datasets.transforms import PackInputs
    from wsss_core.io import DataFileError, save_cam
    from wsss_core.registry import TRANSFORMS, build
    maps = np.stack([np.full((4, 5), 0.25), np.linspace(0, 1, 20).reshape(4, 5)])
    save_cam(tmp_path / 'a.npz', maps, [2, 0])
    load = build(dict(type='LoadAttentionTargets', root=str(tmp_path), num_classes=3), TRANSFORMS)
    sample = load(dict(img_id='a', img=np.zeros((32, 40, 3), np.uint8),
                       labels=np.array([1, 0, 1], np.float32)))
    att = sample['attention']
    assert att.dtype == np.float32 and att.shape == (3, 4, 5)
    np.testing.assert_allclose(att[0], maps[1].astype(np.float16), atol=0)
    np.testing.assert_allclose(att[2], 0.25)
    assert not att[1].any()                              # absent class: zeros
    # a class that is not one of the image's labels gets zeros even with a map on disk
    att = load(dict(img_id='a', labels=np.array([1, 0, 0], np.float32)))['attention']
    assert not att[2].any() and att[0].any()
    packed = PackInputs(keys=('img', 'labels', 'attention'))(sample)
    assert packed['attention'].dtype == torch.float32 and packed['attention'].shape == (3, 4, 5)
    with pytest.raises(DataFileError, match=r'b\.npz'):
        load(dict(img_id='b', labels=np.ones(3, np.float32)))
    save_cam(tmp_path / 'c.npz', maps, [5, 0])
    with pytest.raises(DataFileError, match='outside'):
        load(dict(img_id='c', labels=np.ones(3, np.float32)))
    # num_classes defaults to the number of labels
    inferred = build(dict(type='LoadAttentionTargets', root=str(tmp_path)), TRANSFORMS)
    assert inferred(dict(img_id='a', labels=np.ones(4, np.float32)))['attention'].shape[0] == 4


@pytest.mark.parametrize('pipeline, match', [
    ([dict(type='RandomHorizontalFlip'), dict(type='PackInputs', keys=('img', 'labels',
                                                                       'attention'))], 'Flip'),
    ([dict(type='RandomPadCrop', pad=8)], 'RandomPadCrop'),
    ([dict(type='Resize', short_side=32), dict(type='RandomRescale')], 'RandomRescale'),
    ([dict(type='PackInputs', keys=('img', 'labels'))], "leave out 'attention'"),
    ([dict(type='LoadAttentionTargets', root='x')], 'adds LoadAttentionTargets itself'),
])
def test_stage_refuses_pipelines_that_misalign_or_drop_targets(pipeline, match, registered):
    from wsss_core.pipeline.stage import StageError
    from wsss_oaa.stages.train_integral_attention import TrainIntegralAttention
    with pytest.raises(StageError, match=match):
        TrainIntegralAttention('iam', targets='classify', model=dict(backbone=TINY_BACKBONE),
                               pipeline=pipeline)


def test_stage_declares_its_input_and_defaults(registered):
    from wsss_oaa.stages.train_integral_attention import TrainIntegralAttention
    stage = TrainIntegralAttention('iam', targets='classify', model=dict(backbone=TINY_BACKBONE),
                                   pipeline=[dict(type='Resize', short_side=48),
                                             dict(type='ColorJitter', brightness=0.3),
                                             dict(type='PackInputs',
                                                  keys=('img', 'labels', 'attention'))])
    assert stage.inputs() == ['classify']
    assert stage.options['model']['type'] == 'IntegralAttentionModel'
    assert stage.options['val_split'] is None


# ----------------------------------------------------------------------------- stage
def oaa_plus_cfg() -> dict:
    """OAA+ in small: classifier + accumulation hook -> integral attention model -> its maps."""
    tiny = dict(backbone=dict(TINY_BACKBONE), head_channels=16)
    sgd = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=1e-3, momentum=0.9))
    geometry_free = [dict(type='Resize', short_side=48)]
    return dict(
        seed=0,
        data=dict(type='SyntheticShapes', generator=dict(TINY_GENERATOR), progress=False),
        stages=[
            dict(type='TrainClassifier', name='classify', max_epochs=2, batch_size=8,
                 val_split=None, log_interval=1, optim_wrapper=sgd,
                 model=dict(type='OAAClassifier', **tiny),
                 custom_hooks=[dict(type='OAAAccumulationHook')],
                 pipeline=geometry_free + [dict(type='PackInputs', keys=('img', 'labels'))]),
            dict(type='TrainIntegralAttention', name='iam', targets='classify', max_epochs=1,
                 batch_size=8, log_interval=1, optim_wrapper=sgd,
                 model=dict(type='IntegralAttentionModel', loss_weight=5.0, **tiny),
                 pipeline=geometry_free + [dict(type='PackInputs',
                                                keys=('img', 'labels', 'attention'))]),
            dict(type='MakeCAMs', name='iam_maps', source='iam', scales=(1.0,), flip=False),
        ])


def run(cfg, work_dir, **kw):
    from wsss_core.pipeline import Pipeline
    return {r.name: r for r in Pipeline(Config(cfg), work_dir, progress=False, **kw).run()}


@pytest.fixture(scope='module')
def oaa_plus(tmp_path_factory, registered):
    work_dir = tmp_path_factory.mktemp('oaa_plus')
    cfg = oaa_plus_cfg()
    return cfg, work_dir, run(cfg, work_dir)


def test_targets_are_the_hooks_accumulated_maps(oaa_plus):
    from wsss_core.io import load_cam
    _, work_dir, _ = oaa_plus
    files = sorted((work_dir / 'classify' / 'accumulated').glob('*.npz'))
    assert len(files) == 16
    maps, ids = load_cam(files[0])
    assert maps.shape == (ids.size, 6, 6) and ids.size >= 1


def test_stage_trains_on_the_accumulated_maps_and_records_it(oaa_plus):
    _, work_dir, res = oaa_plus
    manifest = res['iam'].manifest
    art = manifest['artifacts']
    assert art['trained_on'] == 'classify' and art['targets_dir'] == 'classify/accumulated'
    assert art['model']['type'] == 'IntegralAttentionModel' and art['model']['num_classes'] == 3
    assert manifest['counts'] == dict(train_images=16, val_images=0, target_files=16)
    assert 'classify' in manifest['inputs']
    assert (work_dir / 'iam' / art['weights']).is_file()


def test_iam_maps_come_out_of_make_cams(oaa_plus):
    from wsss_core.io import load_cam
    _, work_dir, res = oaa_plus
    files = sorted((work_dir / 'iam_maps' / 'cams').glob('*.npz'))
    assert len(files) == 16
    cams, ids = load_cam(files[0])
    assert cams.shape == (ids.size, 48, 48) and 0 <= cams.min() and cams.max() <= 1


def test_stage_lists_missing_targets_before_training(oaa_plus):
    from wsss_core.pipeline.stage import StageError
    cfg, work_dir, _ = oaa_plus
    victim = sorted((work_dir / 'classify' / 'accumulated').glob('*.npz'))[0]
    data = victim.read_bytes()
    victim.unlink()
    try:
        with pytest.raises(StageError, match=f'1 of 16 .*{victim.stem}'):
            run(cfg, work_dir, only=['iam'])
    finally:
        victim.write_bytes(data)
