"""GETAMNet (``docs/methods/getam.md#23-the-network``) on a small stand-in with the GETAMViT
API (plain and hybrid), and on the real GETAMViT with a tiny random timm ViT: output and path
sizes for a 256 x 256 input, the class head as GAP of the hook-4 map, one encoder pass for both
heads, gradients into decoder and backbone, non-square inputs, the loss / predict modes and one
parameter group."""
from __future__ import annotations

from wsss_getam.testing import registered  # noqa: F401 (fixture; also sets up the process)


import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from wsss_getam.models.getam_net import GETAMNet  # noqa: E402

C = 5            # foreground classes
FEATURES = 16    # decoder width (256 in GETAM; small here to keep the tests fast)


class StandInViT(nn.Module):
    """The GETAMViT API on a tiny random network: a 16x16 patch embedding, prefix tokens and
    one linear "block" per hook; ``is_hybrid`` makes hooks 1-2 stride-4 / stride-8 maps."""

    def __init__(self, embed_dim=12, num_prefix_tokens=1, is_hybrid=False, hybrid_channels=(6, 10)):
        super().__init__()
        self.embed_dim, self.num_prefix_tokens, self.patch_size = embed_dim, num_prefix_tokens, 16
        self.is_hybrid, self.num_blocks = is_hybrid, 4
        self.hook_channels = (list(hybrid_channels) + [embed_dim] * 2 if is_hybrid
                              else [embed_dim] * 4)
        self.patch_embed = nn.Conv2d(3, embed_dim, 16, stride=16)
        self.prefix = nn.Parameter(torch.randn(1, num_prefix_tokens, embed_dim))
        self.blocks = nn.ModuleList(nn.Linear(embed_dim, embed_dim) for _ in range(4))
        if is_hybrid:
            self.stage0 = nn.Conv2d(3, hybrid_channels[0], 4, stride=4)
            self.stage1 = nn.Conv2d(hybrid_channels[0], hybrid_channels[1], 2, stride=2)
        self.calls = 0

    def forward(self, img):
        self.calls += 1
        b, _, h, w = img.shape
        x = self.patch_embed(img).flatten(2).transpose(1, 2)
        x = torch.cat([self.prefix.expand(b, -1, -1), x], dim=1)
        hooks = []
        for blk in self.blocks:
            x = x + torch.tanh(blk(x))
            hooks.append(x)
        if self.is_hybrid:
            s0 = self.stage0(img)
            hooks[:2] = [s0, self.stage1(s0)]
        return dict(hooks=hooks, grid=(h // 16, w // 16), tokens=x)


def make_net(**backbone_kwargs) -> GETAMNet:
    torch.manual_seed(0)
    return GETAMNet(StandInViT(**backbone_kwargs), num_classes=C, features=FEATURES,
                    se_reduction=4)


def record_outputs(modules):
    """Forward hooks that store each module's output shape (last call)."""
    shapes = {}
    for name, m in modules.items():
        m.register_forward_hook(lambda mod, i, o, name=name: shapes.__setitem__(name, o.shape))
    return shapes


@pytest.mark.parametrize('hybrid', [False, True], ids=['plain', 'hybrid'])
def test_shapes_for_a_256_input(hybrid):
    net = make_net(is_hybrid=hybrid).eval()
    dec = net.decoder
    paths = record_outputs({f'path{i}': getattr(dec, f'refinenet{i}') for i in range(1, 5)})
    levels = record_outputs({f'l{i + 1}': b for i, b in enumerate(net.reassemble.branches)})
    with torch.no_grad():
        cls, seg = net(torch.randn(2, 3, 256, 256), mode='tensor')
    assert tuple(cls.shape) == (2, C) and tuple(seg.shape) == (2, C + 1, 256, 256)
    assert [tuple(paths[f'path{i}'][-2:]) for i in (4, 3, 2, 1)] == \
        [(16, 16), (32, 32), (64, 64), (128, 128)]
    expect_ch = (6, 10, 12, 12) if hybrid else (1, 3, 6, 12)   # hybrid: ResNet maps kept
    assert net.reassemble.out_channels == expect_ch
    assert [tuple(levels[f'l{i}'][1:]) for i in range(1, 5)] == \
        [(expect_ch[0], 64, 64), (expect_ch[1], 32, 32), (expect_ch[2], 16, 16),
         (expect_ch[3], 8, 8)]


def test_class_head_is_gap_of_the_hook4_map():
    net = make_net().eval()
    captured = {}
    net.reassemble.branches[3].register_forward_hook(
        lambda m, i, o: captured.__setitem__('l4', o.detach().numpy()))
    with torch.no_grad():
        cls = net.cls_logits(torch.randn(2, 3, 64, 96)).numpy()
    W = net.cls_head.weight.detach().numpy(); b = net.cls_head.bias.detach().numpy()
    gap = captured['l4'].mean(axis=(2, 3))                      # (B, channels of level 4)
    np.testing.assert_allclose(cls, gap @ W.T + b, rtol=1e-5, atol=1e-6)


def test_class_head_width_follows_the_level4_channels():
    """Not a fixed 768 (the reference's vitl bug, ``docs/methods/getam.md#22-backbones``)."""
    net = GETAMNet(StandInViT(embed_dim=12), num_classes=C, features=FEATURES, se_reduction=4,
                   reassemble_channels=(2, 4, 6, 20))
    assert (net.cls_head.in_features, net.cls_head.out_features) == (20, C)
    assert net.seg_head.classifier.out_channels == C + 1


def test_one_encoder_pass_feeds_both_heads():
    net = make_net().eval()
    img = torch.randn(1, 3, 64, 64)
    decoder_calls = []
    net.decoder.register_forward_hook(lambda *a: decoder_calls.append(1))
    with torch.no_grad():
        for run in (net.forward_both, lambda x: net(x, mode='tensor'),
                    lambda x: net(x, mode='predict')):
            before = net.backbone.calls
            run(img)
            assert net.backbone.calls - before == 1
        before, n_dec = net.backbone.calls, len(decoder_calls)
        net.cls_logits(img)
        assert net.backbone.calls - before == 1 and len(decoder_calls) == n_dec  # no decoder
        both_cls, both_seg = net.forward_both(img)
        torch.testing.assert_close(both_cls, net.cls_logits(img))
        torch.testing.assert_close(both_seg, net.seg_logits(img))


@pytest.mark.parametrize('hybrid', [False, True], ids=['plain', 'hybrid'])
def test_backward_reaches_every_parameter(hybrid):
    net = make_net(is_hybrid=hybrid).train()
    cls, seg = net.forward_both(torch.randn(2, 3, 64, 64))
    (cls.sum() + seg.square().mean()).backward()
    no_grad = [n for n, p in net.named_parameters() if p.grad is None]
    assert not no_grad, f'unused parameters: {no_grad}'
    assert net.backbone.patch_embed.weight.grad.abs().sum() > 0
    assert net.decoder.layer1_rn.weight.grad.abs().sum() > 0
    assert net.se_block.fc1.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('hybrid', [False, True], ids=['plain', 'hybrid'])
def test_non_square_multiples_of_32_work_and_others_are_refused(hybrid):
    net = make_net(is_hybrid=hybrid).eval()
    with torch.no_grad():
        cls, seg = net.forward_both(torch.randn(1, 3, 64, 160))
    assert tuple(cls.shape) == (1, C) and tuple(seg.shape) == (1, C + 1, 64, 160)
    with pytest.raises(ValueError, match='multiples of 32'):
        net.seg_logits(torch.randn(1, 3, 48, 64))


@pytest.mark.parametrize('hybrid', [False, True], ids=['plain', 'hybrid'])
def test_whole_image_entry_points_fit_other_sizes_to_multiples_of_32(hybrid):
    # a validation image of 104 x 72 px: resized to 96 x 64 (the nearest multiples), the
    # segmentation logits resized back; the training-size heads still refuse it
    net = make_net(is_hybrid=hybrid).eval()
    img = torch.randn(2, 3, 104, 72)
    fitted = torch.nn.functional.interpolate(img, size=(96, 64), mode='bilinear',
                                             align_corners=False)
    with torch.no_grad():
        cls, seg = net(img, mode='tensor')
        cls_fit, seg_fit = net.forward_both(fitted)
        preds = net(img, mode='predict')
        cams = net.cam_logits(img)
    assert torch.equal(cls, cls_fit)
    assert tuple(seg.shape) == (2, C + 1, 104, 72)
    back = torch.nn.functional.interpolate(seg_fit, size=(104, 72), mode='bilinear',
                                           align_corners=False)
    assert torch.equal(seg, back)
    assert torch.equal(preds[1]['seg'], back[1].argmax(0))
    assert torch.allclose(preds[0]['scores'], torch.sigmoid(cls_fit[0]))
    assert tuple(cams.shape) == (2, C, 3, 2)          # stride 32 of 96 x 64
    with torch.no_grad():
        assert torch.equal(cams, net.cam_logits(fitted))
    with pytest.raises(ValueError, match='multiples of 32'):
        net.forward_both(img)


def test_loss_mode_is_the_multilabel_soft_margin_of_the_class_logits():
    net = make_net().eval()
    img = torch.randn(2, 3, 64, 64)
    labels = torch.tensor([[1, 0, 0, 1, 0], [0, 0, 1, 0, 0]])
    loss = net(img, labels, mode='loss')
    assert set(loss) == {'loss_cls'}
    z = net.cls_logits(img).detach().numpy().astype(np.float64)
    y = labels.numpy()
    log_sig = -np.log1p(np.exp(-z)); log_one_minus = -np.log1p(np.exp(z))
    expect = -(y * log_sig + (1 - y) * log_one_minus).mean(axis=1).mean()
    assert loss['loss_cls'].item() == pytest.approx(expect, rel=1e-5)
    with pytest.raises(ValueError, match='labels'):
        net(img, mode='loss')
    with pytest.raises(ValueError, match='unknown mode'):
        net(img, mode='segment')


def test_predict_mode_gives_scores_labels_and_an_argmax_map():
    net = make_net().eval()
    img = torch.randn(2, 3, 64, 96)
    labels = torch.tensor([[1, 0, 0, 0, 1], [0, 1, 0, 0, 0]])
    with torch.no_grad():
        preds = net(img, labels, mode='predict')
        cls, seg = net.forward_both(img)
    assert len(preds) == 2
    for n, p in enumerate(preds):
        torch.testing.assert_close(p['scores'], torch.sigmoid(cls[n]))
        assert torch.equal(p['labels'], labels[n])
        assert p['seg'].shape == (64, 96) and p['seg'].dtype == torch.int64
        s = seg[n].numpy()
        assert (p['seg'].numpy() == s.argmax(0)).all()
    assert torch.equal(net(img, mode='predict')[0]['labels'], torch.zeros(C))


def test_train_step_normalises_uint8_images_with_imagenet_statistics():
    from mmengine.optim import build_optim_wrapper
    net = make_net()
    mean = net.data_preprocessor.mean.flatten() / 255
    std = net.data_preprocessor.std.flatten() / 255
    torch.testing.assert_close(mean, torch.tensor([0.485, 0.456, 0.406]))
    torch.testing.assert_close(std, torch.tensor([0.229, 0.224, 0.225]))
    wrapper = build_optim_wrapper(net, dict(optimizer=dict(type='SGD', lr=0.01)))
    assert len(wrapper.optimizer.param_groups) == 1        # one group, as the reference
    assert len(wrapper.optimizer.param_groups[0]['params']) == len(list(net.parameters()))
    data = dict(img=torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8),
                labels=torch.tensor([[1, 0, 0, 0, 0], [0, 0, 0, 1, 1]]),
                img_id=['a', 'b'])
    before = net.cls_head.weight.detach().clone()
    log = net.train_step(data, wrapper)
    assert set(log) == {'loss', 'loss_cls'} and torch.isfinite(log['loss'])
    assert not torch.equal(before, net.cls_head.weight)


def test_registered_in_models_and_builds_from_a_config(registered):  # noqa: F811
    from wsss_core.registry import MODELS, build
    assert MODELS.get('GETAMNet') is GETAMNet
    net = build(dict(type='GETAMNet', backbone=StandInViT(), num_classes=3, features=8,
                     se_reduction=4), MODELS)
    assert isinstance(net, GETAMNet) and net.cls_head.out_features == 3
    with pytest.raises(TypeError, match='GETAMViT'):
        GETAMNet(nn.Conv2d(3, 3, 1), num_classes=3)


@pytest.mark.parametrize('kind', ['vit', 'deit_distilled', 'hybrid'])
def test_with_the_real_getamvit_on_a_tiny_timm_vit(kind):
    from wsss_core.registry import MODELS, build
    from wsss_getam.models.vit_backbone import TINY_BACKBONES
    torch.manual_seed(0)
    net = build(dict(type='GETAMNet', backbone=TINY_BACKBONES[kind], num_classes=C,
                     features=FEATURES, se_reduction=4), MODELS)
    bb = net.backbone
    assert net.reassemble.out_channels == (tuple(bb.hook_channels[:2]) + (32, 32)
                                           if kind == 'hybrid' else (4, 8, 16, 32))
    paths = record_outputs({f'path{i}': getattr(net.decoder, f'refinenet{i}')
                            for i in range(1, 5)})
    cls, seg = net.forward_both(torch.randn(2, 3, 64, 96))
    assert tuple(cls.shape) == (2, C) and tuple(seg.shape) == (2, C + 1, 64, 96)
    assert [tuple(paths[f'path{i}'][-2:]) for i in (4, 3, 2, 1)] == \
        [(4, 6), (8, 12), (16, 24), (32, 48)]
    (cls.sum() + seg.mean()).backward()
    assert bb.vit.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert net.decoder.layer1_rn.weight.grad.abs().sum() > 0
    # the GETAM map's input: class-logit gradients reach every block's attention
    net.eval()
    with bb.capturing_attention():
        logits = net.cls_logits(torch.randn(1, 3, 64, 64))
        grads = bb.attention_gradients(logits[0, 1])
    assert all(g.abs().sum() > 0 for g in grads)
