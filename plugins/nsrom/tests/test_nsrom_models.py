"""NSROM's networks: the GloRe unit against its equations, the two head layouts and inits,
the NSROM-form OA-CAM loss, CAM shapes, backbone swapping and the lr groups."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from wsss_nsrom.testing import TINY_BACKBONE, registered  # noqa: F401 (fixture)


def _build(cfg):
    from wsss_core.registry import MODELS, build
    return build(cfg, MODELS)


def _tiny(kind: str, num_classes: int = 3, **kwargs):
    cfg = dict(type=kind, num_classes=num_classes, backbone=dict(TINY_BACKBONE),
               head_channels=16, num_nodes=4)
    cfg.update(kwargs)
    torch.manual_seed(0)
    return _build(cfg)


def _glore(**kwargs):
    from wsss_nsrom.models.glore import GloReUnit
    torch.manual_seed(0)
    return GloReUnit(**kwargs)


def _kinds(head):
    return [type(m).__name__ for m in head]


# ----------------------------------------------------------------------------- GloRe unit
@pytest.mark.parametrize('shape', [(1, 8, 5, 7), (2, 16, 4, 4), (3, 6, 1, 9), (2, 12, 9, 3)])
def test_glore_keeps_the_input_shape(shape):
    unit = _glore(in_channels=shape[1], num_nodes=3)
    x = torch.randn(*shape)
    assert unit(x).shape == x.shape
    unit.eval()
    assert unit(x).shape == x.shape


def test_glore_layers_have_the_reference_sizes_and_node_state_axes():
    unit = _glore(in_channels=20, num_nodes=6)
    assert unit.num_states == 12                                   # S = 2 N by default
    assert (unit.conv_state.in_channels, unit.conv_state.out_channels) == (20, 12)
    assert (unit.conv_proj.in_channels, unit.conv_proj.out_channels) == (20, 6)
    node, state = unit.gcn.node_conv, unit.gcn.state_conv
    assert isinstance(node, nn.Conv1d) and (node.in_channels, node.out_channels) == (6, 6)
    assert node.bias is not None
    assert isinstance(state, nn.Conv1d) and (state.in_channels, state.out_channels) == (12, 12)
    assert state.bias is None
    assert (unit.conv_extend.in_channels, unit.conv_extend.out_channels) == (12, 20)
    assert unit.conv_extend.bias is None
    assert unit.bn.num_features == 20 and unit.bn.eps == 1e-4
    assert _glore(in_channels=20, num_nodes=6, num_states=5).gcn.state_conv.in_channels == 5
    assert not unit.normalize


@pytest.mark.parametrize('train', [True, False])
def test_zero_initialised_last_bn_gives_identity(train):
    unit = _glore(in_channels=8, num_nodes=4, zero_init_residual=True).train(train)
    assert not unit.bn.weight.any()
    x = torch.randn(2, 8, 5, 6)
    assert torch.equal(unit(x), x)


def test_glore_changes_the_input_and_gradients_reach_every_parameter():
    unit = _glore(in_channels=8, num_nodes=4)
    x = torch.randn(2, 8, 5, 6)
    out = unit(x)
    assert not torch.allclose(out, x, atol=1e-3)
    (out * torch.randn_like(out)).sum().backward()
    for name, p in unit.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize('train', [True, False])
def test_glore_is_permutation_equivariant_over_positions_and_global(train):
    unit = _glore(in_channels=6, num_nodes=3).double().train(train)
    if not train:   # non-trivial running statistics
        unit.bn.running_mean.uniform_(-1, 1)
        unit.bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 6, 4, 5, dtype=torch.float64)
    perm = torch.randperm(20)

    def permute(t):
        return t.flatten(2)[..., perm].reshape(t.shape)

    assert torch.allclose(unit(permute(x)), permute(unit(x)), atol=1e-10)
    # ... but it is not a per-position map: one position changes all the others
    y = x.clone()
    y[..., 0, 0] += 1.0
    diff = (unit(y) - unit(x)).abs().flatten(2)[..., 1:]
    assert (diff.amax(dim=1) > 1e-6).all()


def test_node_features_are_state_times_projection_transposed():
    unit = _glore(in_channels=2, num_nodes=2, num_states=3)
    x = torch.randn(1, 2, 2, 3)
    v, proj = unit.project(x)
    assert v.shape == (1, 3, 2) and proj.shape == (1, 2, 6)
    ws, bs = unit.conv_state.weight[:, :, 0, 0], unit.conv_state.bias
    wp, bp = unit.conv_proj.weight[:, :, 0, 0], unit.conv_proj.bias
    pixels = x[0].flatten(1)                                   # (C, L)
    by_hand = torch.zeros(3, 2)
    for s in range(3):
        for n in range(2):
            for p in range(6):
                state = sum(ws[s, c] * pixels[c, p] for c in range(2)) + bs[s]
                node = sum(wp[n, c] * pixels[c, p] for c in range(2)) + bp[n]
                by_hand[s, n] += state * node
    assert torch.allclose(v[0], by_hand, atol=1e-5)
    einsum = torch.einsum('bsl,bnl->bsn', unit.conv_state(x).flatten(2), proj)
    assert torch.allclose(v, einsum, atol=1e-6)
    unit.normalize = True
    assert torch.allclose(unit.project(x)[0], by_hand / 6, atol=1e-5)


def test_glore_forward_follows_the_documented_equations():
    # X' = X + BN(W_e (W_g ReLU(V + V A^T + a)) B),  V = X_s B^T   (eval-mode BN)
    unit = _glore(in_channels=5, num_nodes=3).double().eval()
    unit.bn.running_mean.uniform_(-1, 1)
    unit.bn.running_var.uniform_(0.5, 2)
    nn.init.uniform_(unit.bn.weight, 0.5, 1.5)
    nn.init.uniform_(unit.bn.bias, -0.5, 0.5)
    x = torch.randn(2, 5, 3, 4, dtype=torch.float64)
    xs = torch.einsum('sc,bcl->bsl', unit.conv_state.weight[:, :, 0, 0], x.flatten(2)) \
        + unit.conv_state.bias[:, None]
    b = torch.einsum('nc,bcl->bnl', unit.conv_proj.weight[:, :, 0, 0], x.flatten(2)) \
        + unit.conv_proj.bias[:, None]
    v = torch.einsum('bsl,bnl->bsn', xs, b)
    a, a_bias = unit.gcn.node_conv.weight[:, :, 0], unit.gcn.node_conv.bias
    h = v + torch.einsum('bsm,nm->bsn', v, a) + a_bias
    z = torch.einsum('ts,bsn->btn', unit.gcn.state_conv.weight[:, :, 0], torch.relu(h))
    y = torch.einsum('bsn,bnl->bsl', z, b)
    e = torch.einsum('cs,bsl->bcl', unit.conv_extend.weight[:, :, 0, 0], y)
    bn = unit.bn
    e = (e - bn.running_mean[:, None]) / torch.sqrt(bn.running_var[:, None] + 1e-4) \
        * bn.weight[:, None] + bn.bias[:, None]
    expected = x + e.reshape(x.shape)
    assert torch.allclose(unit(x), expected, atol=1e-9)


# ----------------------------------------------------------------------------- heads
def test_classifier_head_has_no_relu_after_third_conv_relu_after_glore_and_he_init():
    from wsss_nsrom.models.nsrom_models import GloReAttentionHead
    torch.manual_seed(0)
    head = GloReAttentionHead(64, 20, channels=64, num_nodes=8)
    assert _kinds(head) == ['Conv2d', 'ReLU', 'Conv2d', 'ReLU', 'Conv2d', 'GloReUnit', 'ReLU',
                            'Conv2d']
    convs = [m for m in head if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(3, 3)] * 3 + [(1, 1)]
    assert convs[-1].out_channels == 20 and convs[-1].bias is not None
    # He init N(0, sqrt(2 / (k k C_out))) for every Conv2d, GloRe's 1x1 convs included
    assert convs[1].weight.std().item() == pytest.approx(math.sqrt(2 / (9 * 64)), rel=0.03)
    glore = head.glore
    assert glore.conv_state.weight.std().item() == pytest.approx(math.sqrt(2 / 16), rel=0.1)
    assert all(not c.bias.any() for c in convs + [glore.conv_state, glore.conv_proj])
    assert torch.equal(glore.bn.weight, torch.ones(64)) and not glore.bn.bias.any()
    # the GCN's Conv1d keep PyTorch's default init (uniform, bound 1/sqrt(fan_in), bias != 0)
    node = glore.gcn.node_conv
    assert node.weight.abs().max() <= 1 / math.sqrt(8) and node.bias.abs().sum() > 0


def test_oacam_head_has_relu_after_third_conv_no_relu_before_1x1_and_default_init():
    from wsss_nsrom.models.nsrom_models import GloReAttentionHead, OACAM_HEAD
    torch.manual_seed(0)
    head = GloReAttentionHead(64, 20, channels=64, num_nodes=8, **OACAM_HEAD)
    assert _kinds(head) == ['Conv2d', 'ReLU', 'Conv2d', 'ReLU', 'Conv2d', 'ReLU', 'GloReUnit',
                            'Conv2d']
    convs = [m for m in head if isinstance(m, nn.Conv2d)]
    # PyTorch default: kaiming_uniform(a=sqrt 5) = U(+-1/sqrt(fan_in)), biases non-zero
    assert convs[1].weight.abs().max() <= 1 / math.sqrt(9 * 64)
    assert convs[1].weight.std().item() == pytest.approx(1 / math.sqrt(3 * 9 * 64), rel=0.03)
    assert convs[-1].bias.abs().sum() > 0


def test_head_options_are_checked_and_zero_init_survives_he_init():
    from wsss_nsrom.models.nsrom_models import GloReAttentionHead
    with pytest.raises(ValueError, match='init'):
        GloReAttentionHead(8, 3, channels=8, num_nodes=2, init='xavier')
    head = GloReAttentionHead(8, 3, channels=8, num_nodes=2, zero_init_residual=True)
    assert not head.glore.bn.weight.any()
    x = torch.randn(1, 8, 4, 4)
    assert torch.equal(head.glore(x), x)


# ----------------------------------------------------------------------------- models
def test_classifier_and_oacam_give_32x32_maps_for_a_256_warp(registered):
    img = torch.zeros(1, 3, 256, 256)
    for kind in ('NSROMClassifier', 'OACAMModel'):
        model = _tiny(kind, num_classes=20)
        with torch.no_grad():
            assert model.cam_logits(img).shape == (1, 20, 32, 32), kind
    assert type(_tiny('NSROMClassifier').classifier[5]).__name__ == 'GloReUnit'
    assert type(_tiny('OACAMModel').classifier[6]).__name__ == 'GloReUnit'


def test_classifier_keeps_oaa_loss_mode_step_maps_and_drop_mask(registered):
    import torch.nn.functional as F
    model = _tiny('NSROMClassifier')
    img = torch.randn(2, 3, 48, 40)
    labels = torch.tensor([[1., 0., 1.], [0., 1., 0.]])
    mask = torch.zeros(2, 1, 48, 40)
    mask[..., :8, :] = 1
    seen = []
    model.backbone.register_forward_hook(lambda mod, args, out: seen.append(args[0]))
    losses = model(img, labels, mode='loss', drop_mask=mask)
    loss = losses['loss_cls']
    assert not seen[-1][..., :8, :].any()
    cam, logits = losses['step_maps']['cam'], losses['step_maps']['logits']
    assert cam.shape == (2, 3, 6, 5) and not cam.requires_grad
    assert torch.allclose(logits, cam.mean(dim=(2, 3)))
    assert loss.item() == pytest.approx(F.multilabel_soft_margin_loss(logits, labels).item(),
                                        rel=1e-5)
    loss.backward()
    assert model.classifier.glore.conv_proj.weight.grad is not None


def test_oacam_defaults_to_the_nsrom_loss_with_positives_t_above_zero(registered):
    from wsss_oaa.integral_attention import integral_attention_loss
    model = _tiny('OACAMModel')
    assert model.loss_form == 'nsrom'
    img = torch.randn(2, 3, 32, 32)
    target = torch.zeros(2, 3, 4, 4)
    target[0, 0, :2] = torch.rand(2, 4) * 0.9 + 0.1
    target[1, 2, 1, 1:3] = 5e-4           # positive for caffe (t > 0), negative for 'pytorch'
    loss = model(img, torch.ones(2, 3), mode='loss', attention=target)['loss_iam']
    with torch.no_grad():
        x = model.cam_logits(img)
    assert loss.item() == pytest.approx(integral_attention_loss(x, target, 'nsrom').item(),
                                        rel=1e-5)
    pos, neg = target > 0, target == 0
    xn = x[neg].double()
    by_hand = (-target[pos] * torch.log(torch.sigmoid(x[pos]))).mean() \
        + (-torch.log(torch.exp(-xn.clamp(min=0)) + 1e-8) + torch.log1p(torch.exp(-xn.abs()))).mean()
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert loss.item() != pytest.approx(
        integral_attention_loss(x, target, 'pytorch').item(), rel=1e-4)
    loss.backward()
    assert model.classifier.glore.gcn.node_conv.weight.grad is not None


def test_backbone_is_swappable_by_config(registered):
    for kind in ('NSROMClassifier', 'OACAMModel'):
        model = _build(dict(type=kind, num_classes=4, head_channels=8, num_nodes=2,
                            backbone=dict(type='SmallResNet', widths=(8, 8, 16, 16))))
        assert model.cam_logits(torch.zeros(1, 3, 48, 48)).shape == (1, 4, 6, 6)
    timm_model = _build(dict(type='NSROMClassifier', num_classes=4, head_channels=8,
                             num_nodes=2, backbone=dict(type='TimmBackbone',
                                                        model_name='resnet18', output_stride=8)))
    assert timm_model.cam_logits(torch.zeros(1, 3, 64, 64)).shape == (1, 4, 8, 8)


def test_channels_last_gives_the_same_maps(registered):
    img = torch.randn(1, 3, 32, 40)
    plain = _tiny('NSROMClassifier').eval()
    nhwc = _tiny('NSROMClassifier', channels_last=True).eval()
    with torch.no_grad():
        assert torch.allclose(plain.cam_logits(img),
                              nhwc.cam_logits(img.to(memory_format=torch.channels_last)),
                              atol=1e-4)


@pytest.mark.parametrize('kind', ['NSROMClassifier', 'OACAMModel'])
def test_every_glore_parameter_is_in_the_x10_x20_head_groups(registered, kind):
    from wsss_oaa.testing import oaa_param_groups
    model = _tiny(kind)
    groups = oaa_param_groups(model)
    assert {k: g['lr'] for k, g in groups.items()} == pytest.approx(
        dict(backbone=1e-3, backbone_bias=2e-3, head_weight=1e-2, head_bias=2e-2))
    ids = {name: {id(p) for p in g['params']} for name, g in groups.items()}
    glore = model.classifier.glore
    for name, p in glore.named_parameters():   # the reference splits by name: *.weight x10
        group = 'head_weight' if name.endswith('weight') else 'head_bias'
        assert id(p) in ids[group], name
    assert id(glore.bn.weight) in ids['head_weight'] and id(glore.bn.bias) in ids['head_bias']
    head = {id(p) for p in model.classifier.parameters()}
    assert head == ids['head_weight'] | ids['head_bias']
    n_backbone = sum(p.numel() for p in model.backbone.parameters())
    assert sum(p.numel() for g in ('backbone', 'backbone_bias')
               for p in groups[g]['params']) == n_backbone
