"""InterPixelRelationNet: stride-4 outputs, a frozen backbone, trainable branches."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from wsss_core.irn.model import InterPixelRelationNet, TimmFeatureLevels, pool_to_stride4

TINY_BACKBONE = dict(type='TimmFeatureLevels', model_name='resnet18', channels=(8, 16, 32, 64))


def tiny_irn(radius: int = 3, **kw) -> InterPixelRelationNet:
    torch.manual_seed(0)
    return InterPixelRelationNet(backbone=dict(TINY_BACKBONE), radius=radius,
                                 boundary_widths=(4,) * 5, displacement_widths=(4, 4, 8, 8, 8),
                                 displacement_fuse_width=8, **kw)


def test_timm_levels_strides_and_irn_first_level():
    """resnet at output stride 16: strides 2, 4, 8, 16, 16; pooling the stride-2 level gives
    the stem's own max-pool output (IRN's first level)."""
    torch.manual_seed(0)
    levels = TimmFeatureLevels('resnet18', channels=(8, 16, 32, 64)).eval()
    assert levels.reductions == [2, 4, 8, 16, 16]
    assert levels.channels == [64, 8, 16, 32, 64]
    x = torch.randn(1, 3, 37, 45)
    with torch.no_grad():
        feats = levels(x)
        stem = levels.model.act1(levels.model.bn1(levels.model.conv1(x)))
        expected = levels.model.maxpool(stem)
    assert torch.equal(pool_to_stride4(feats[0], 2), expected)


@pytest.mark.parametrize('size', [(37, 45), (33, 50), (64, 64), (29, 31)])
def test_outputs_are_on_the_stride4_grid(size):
    model = tiny_irn().eval()
    h, w = size
    grid = ((h + 3) // 4, (w + 3) // 4)
    x = torch.randn(2, 3, h, w)
    with torch.no_grad():
        boundary = model.boundary_map(x)
        disp = model.displacement(x)
        logits, disp2 = model(x, mode='tensor')
        preds = model(x, mode='predict')
    assert boundary.shape == (2, 1) + grid and disp.shape == (2, 2) + grid
    assert logits.shape == (2, 1) + grid and torch.equal(disp, disp2)
    assert ((boundary >= 0) & (boundary <= 1)).all()
    assert torch.allclose(boundary, torch.sigmoid(logits))
    assert len(preds) == 2 and preds[0]['boundary'].shape == (1,) + grid


def test_boundary_map_flip_averages_the_logits():
    """IRN's inference map: sigmoid(e(x)/2 + flip(e(flip x))/2)."""
    model = tiny_irn().eval()
    x = torch.randn(1, 3, 40, 52)
    with torch.no_grad():
        e = model(x)[0]
        e_flip = model(x.flip(-1))[0].flip(-1)
        got = model.boundary_map(x, flip=True)
    assert torch.allclose(got, torch.sigmoid((e + e_flip) / 2), atol=1e-6)
    assert not torch.allclose(got, torch.sigmoid(e), atol=1e-4)


def test_frozen_backbone_gets_no_gradient_and_stays_in_eval_mode():
    model = tiny_irn().train()
    assert not model.backbone.training and model.boundary_branch.training
    stats = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    label = torch.zeros(2, 48, 48, dtype=torch.long)
    label[:, :, 24:] = 1
    label[:, :4] = 255
    losses = model(torch.randn(2, 3, 48, 48), ir_label=label, mode='loss')
    assert set(losses) == {'loss_bg_pos_aff', 'loss_fg_pos_aff', 'loss_neg_aff', 'loss_dp_fg',
                           'loss_dp_bg'}
    sum(losses.values()).backward()
    for p in model.backbone.parameters():
        assert not p.requires_grad and p.grad is None
    for k, v in model.backbone.state_dict().items():   # BN statistics untouched
        assert torch.equal(v, stats[k]), k
    for branch in (model.boundary_branch, model.displacement_branch):
        grads = [p.grad for p in branch.parameters()]
        assert all(g is not None for g in grads)
        assert sum(float(g.abs().sum()) for g in grads) > 0


def test_backbone_checkpoint_is_loaded(tmp_path):
    torch.manual_seed(1)
    src = TimmFeatureLevels('resnet18', channels=(8, 16, 32, 64))
    torch.save(src.model.state_dict(), tmp_path / 'w.pth')
    torch.manual_seed(2)
    loaded = TimmFeatureLevels('resnet18', channels=(8, 16, 32, 64),
                               checkpoint=str(tmp_path / 'w.pth'))
    assert loaded.missing_keys == []
    for k, v in src.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[k], v)


def test_loss_needs_labels_and_a_large_enough_crop():
    model = tiny_irn(radius=10)
    with pytest.raises(ValueError, match='ir_label'):
        model(torch.randn(1, 3, 48, 48), mode='loss')
    with pytest.raises(ValueError, match='crop at least 40 x 76'):
        model(torch.randn(1, 3, 48, 48), ir_label=torch.zeros(1, 48, 48, dtype=torch.long),
              mode='loss')
    with pytest.raises(ValueError, match='differs from the image size'):
        model(torch.randn(1, 3, 48, 80), ir_label=torch.zeros(1, 40, 80, dtype=torch.long),
              mode='loss')


def test_single_level_backbone_is_refused(core_registered):
    with pytest.raises(TypeError, match='multi-level backbone'):
        InterPixelRelationNet(backbone=dict(type='SmallResNet', widths=(8, 8, 8, 8)))
    with pytest.raises(TypeError, match='out_indices'):
        InterPixelRelationNet(backbone=dict(type='TorchvisionResNet', out_indices=4))


def test_torchvision_resnet_is_irns_own_backbone(core_registered):
    """TorchvisionResNet at IRN's strides (stem 4, then 4, 8, 16, 16 undilated) fits too."""
    torch.manual_seed(0)
    model = InterPixelRelationNet(
        backbone=dict(type='TorchvisionResNet', depth=50, output_stride=16,
                      out_indices=(0, 1, 2, 3, 4)),
        boundary_widths=(4,) * 5, displacement_widths=(4, 4, 8, 8, 8),
        displacement_fuse_width=8).eval()
    assert model.backbone.reductions == [4, 4, 8, 16, 16]
    with torch.no_grad():
        assert model.boundary_map(torch.randn(1, 3, 37, 45)).shape == (1, 1, 10, 12)
        assert model.displacement(torch.randn(1, 3, 37, 45)).shape == (1, 2, 10, 12)


def test_upsampled_levels_are_cropped_not_stretched():
    """A stride-16 level is upsampled x4 and cropped to the grid (IRN's alignment), so grid
    cell 0 of the upsampled map only depends on the first cells of that level."""
    from wsss_core.irn.model import to_grid
    x = torch.arange(12.).view(1, 1, 3, 4)
    out = to_grid(x, 4, (10, 13))
    ref = F.interpolate(x, scale_factor=4, mode='bilinear', align_corners=False)[..., :10, :13]
    assert torch.equal(out, ref)
