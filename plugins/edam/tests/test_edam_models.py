"""EDAM's networks: the DA layer, the CMA module (positional table, custom LayerNorm, SDPA vs
explicit attention, batched per-class encoders vs a per-class / per-pair reference), the
classifier's loss / predict / CAM outputs, the DAMasks generator and the lr groups."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from wsss_edam.testing import registered  # noqa: F401 (fixture; also sets up the process)

TINY_BACKBONE = dict(type='SmallResNet', widths=(8, 8, 16, 16))
TINY_CMA = dict(embed_dims=16, num_heads=2, ffn_dims=32)


@pytest.fixture(scope='module')
def models(registered):  # noqa: F811
    from wsss_edam.models import collaborative_attention, edam_classifier
    return collaborative_attention, edam_classifier


def _cma(num_classes=3, in_channels=6, **kwargs):
    from wsss_edam.models.collaborative_attention import CollaborativeMultiAttention
    torch.manual_seed(0)
    return CollaborativeMultiAttention(in_channels, num_classes, **dict(TINY_CMA, **kwargs))


def _classifier(num_classes=3, **kwargs):
    from wsss_core.registry import MODELS, build
    torch.manual_seed(0)
    return build(dict(type='EDAMClassifier', backbone=dict(TINY_BACKBONE),
                      num_classes=num_classes, cma=dict(TINY_CMA), **kwargs), MODELS)


def _masks(n, k, h, w, seed=1):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, k + 1, h, w, generator=g), dim=1).abs()[:, :k]


# ------------------------------------------------------------------ reference (per class, pair)
def _ref_layer_norm(norm, c, t):
    mean = t.mean(-1, keepdim=True)
    std = ((t - mean) ** 2).sum(-1, keepdim=True).div(t.shape[-1] - 1).sqrt()
    return norm.weight[c] * (t - mean) / (std + 1e-6) + norm.bias[c]


def _ref_linear(layer, c, t):
    return t @ layer.weight[c].t() + layer.bias[c]


def _ref_encoder(enc, c, x):
    """Class-c encoder on ONE sequence x (L, d), written with per-head loops."""
    d = x.shape[-1]
    dk = d // enc.num_heads
    q, k, v = _ref_linear(enc.qkv, c, _ref_layer_norm(enc.norm1, c, x)).split(d, dim=-1)
    heads = []
    for i in range(enc.num_heads):
        s = slice(i * dk, (i + 1) * dk)
        heads.append(torch.softmax(q[:, s] @ k[:, s].t() / math.sqrt(dk), dim=-1) @ v[:, s])
    x = x + _ref_linear(enc.proj, c, torch.cat(heads, dim=-1))
    g = _ref_linear(enc.fc1, c, _ref_layer_norm(enc.norm2, c, x))
    g = 0.5 * g * (1 + torch.tanh(math.sqrt(2 / math.pi) * (g + 0.044715 * g ** 3)))
    return x + _ref_linear(enc.fc2, c, g)


def _ref_cma(cma, feat, masks):
    """Logits (2P, K) by looping over pairs and classes (eval mode: no dropout)."""
    n, k, h, w = masks.shape
    d = cma.embed_dims
    g = cma.reduce(feat)
    pos = torch.arange(h * w, dtype=torch.float64)[:, None]
    rate = torch.exp(-torch.arange(0, d, 2, dtype=torch.float64) * math.log(10000.0) / d)
    pe = torch.zeros(h * w, d, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * rate), torch.cos(pos * rate)
    logits = torch.zeros(n, k)
    for p in range(n // 2):
        for c in range(k):
            seqs = []
            for i in range(2):
                a = g[2 * p + i] * masks[2 * p + i, c]
                seqs.append(a.reshape(d, h * w).t() + pe.float() + cma.segment_embedding.weight[i])
            out = _ref_encoder(cma.encoders, c, torch.cat(seqs, dim=0))
            for i in range(2):
                pooled = out[i * h * w:(i + 1) * h * w].mean(0)
                logits[2 * p + i, c] = pooled @ cma.heads.weight[c]
    return logits


# ----------------------------------------------------------------------------- DA layer
def test_da_masks_have_unit_norm_over_k_plus_1_channels_and_are_non_negative(models):
    from wsss_edam.models.discriminative_activation import DiscriminativeActivation
    torch.manual_seed(0)
    da = DiscriminativeActivation(6, 4)
    assert da.conv.bias is None and da.conv.out_channels == 5 and da.background_channel == 4
    mhat = da(torch.randn(2, 6, 7, 5))
    assert mhat.shape == (2, 5, 7, 5) and (mhat >= 0).all()
    torch.testing.assert_close(mhat.pow(2).sum(1), torch.ones(2, 7, 5))
    # the class channels alone do not have unit norm: the background channel takes a share
    assert (mhat[:, :4].pow(2).sum(1) < 1 - 1e-4).any()
    assert torch.equal(da(torch.zeros(1, 6, 3, 3)), torch.zeros(1, 5, 3, 3))  # eps, no NaN


# --------------------------------------------------------------------- CMA building blocks
def test_positional_table_follows_the_feature_size_200px_crop(models):
    cma_mod, _ = models
    cma = _cma(embed_dims=8, ffn_dims=16).eval()
    assert cma.pe.shape[0] == 0 and 'pe' not in cma.state_dict()
    feat, masks = torch.randn(2, 6, 25, 25), _masks(2, 3, 25, 25)  # 200 px crop, stride 8
    cma(feat, masks)
    pe = cma.pe
    assert pe.shape == (625, 8)
    torch.testing.assert_close(pe[0], torch.tensor([0., 1., 0., 1., 0., 1., 0., 1.]))
    r1, r2 = 10000 ** (-2 / 8), 10000 ** (-4 / 8)  # exp(-2i ln(1e4) / d) for i = 1, 2
    assert pe[1, 0].item() == pytest.approx(math.sin(1.0), abs=1e-6)
    assert pe[1, 1].item() == pytest.approx(math.cos(1.0), abs=1e-6)
    assert pe[624, 2].item() == pytest.approx(math.sin(624 * r1), abs=1e-6)
    assert pe[624, 3].item() == pytest.approx(math.cos(624 * r1), abs=1e-6)
    assert pe[300, 5].item() == pytest.approx(math.cos(300 * r2), abs=1e-6)
    torch.testing.assert_close(cma_mod.sinusoidal_table(625, 8), pe)
    cma(torch.randn(2, 6, 30, 31), _masks(2, 3, 30, 31))  # larger map: the table grows
    assert cma.pe.shape[0] == 930
    torch.testing.assert_close(cma.pe[:625], pe)
    cma(torch.randn(2, 6, 4, 4), _masks(2, 3, 4, 4))  # smaller map: a prefix is used
    assert cma.pe.shape[0] == 930


def test_layer_norm_uses_the_unbiased_std(models):
    cma_mod, _ = models
    norm = cma_mod.StackedLayerNorm(2, 4)
    with torch.no_grad():
        norm.weight[1].fill_(2.0)
        norm.bias[1].fill_(0.5)
    x = torch.tensor([[[1., 2., 3., 4.]], [[1., 2., 3., 4.]]])
    std = math.sqrt((1.5 ** 2 + 0.5 ** 2 + 0.5 ** 2 + 1.5 ** 2) / 3)  # divide by d - 1
    expected = torch.tensor([-1.5, -0.5, 0.5, 1.5]) / (std + 1e-6)
    out = norm(x)
    torch.testing.assert_close(out[0, 0], expected)
    torch.testing.assert_close(out[1, 0], 2 * expected + 0.5)
    assert not torch.allclose(out[0], F.layer_norm(x[0], (4,), eps=1e-6), atol=1e-3)


def test_stacked_init_follows_the_reference_fans(models):
    cma = _cma(embed_dims=16, ffn_dims=64)
    bound = math.sqrt(6 / 32)  # each of Q, K, V is a 16 x 16 Xavier-uniform linear
    qkv = cma.encoders.qkv.weight
    assert qkv.shape == (3, 48, 16) and qkv.abs().max() <= bound and qkv.abs().max() > 0.8 * bound
    assert cma.encoders.fc1.weight.abs().max() <= math.sqrt(6 / 80)
    assert torch.equal(cma.encoders.norm1.weight, torch.ones(3, 16))
    assert cma.segment_embedding.weight.shape == (5, 16) and cma.reduce.bias is None
    assert cma.heads.weight.shape == (3, 16)


def test_reference_sizes_have_the_reference_parameter_counts(models):
    """``docs/methods/edam.md#5-collaborative-multi-attention``: reduce 524,288; 20 encoders x
    198,272; 20 heads 2,560; segment table 640; DA conv 4096 -> 21 3x3: 774,144."""
    from wsss_edam.models.discriminative_activation import DiscriminativeActivation
    cma_mod, _ = models
    cma = cma_mod.CollaborativeMultiAttention(4096, 20)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(cma.reduce) == 524_288 and count(cma.heads) == 2_560
    assert count(cma.encoders) == 20 * 198_272 and count(cma.segment_embedding) == 640
    assert count(DiscriminativeActivation(4096, 20)) == 774_144


# ------------------------------------------------------------------------- equivalences
@pytest.mark.parametrize('pairs', [1, 2])
def test_sdpa_path_equals_explicit_path(models, pairs):
    cma = _cma().eval()
    feat, masks = torch.randn(2 * pairs, 6, 5, 4), _masks(2 * pairs, 3, 5, 4)
    out_sdpa = cma(feat, masks)
    cma.attention = 'explicit'
    out_explicit = cma(feat, masks)
    torch.testing.assert_close(out_sdpa, out_explicit, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match='attention'):
        cma.attention = 'flash'


@pytest.mark.parametrize('attention', ['sdpa', 'explicit'])
def test_batched_per_class_encoders_equal_a_per_class_per_pair_loop(models, attention):
    cma = _cma(num_classes=4, attention=attention).eval()
    enc = cma.encoders
    k, pairs, length, d = 4, 3, 10, 16
    x = torch.randn(k, pairs * length, d)
    batched = enc(x, pairs=pairs).view(k, pairs, length, d)
    for c in range(k):
        for p in range(pairs):
            ref = _ref_encoder(enc, c, x[c, p * length:(p + 1) * length])
            torch.testing.assert_close(batched[c, p], ref, atol=1e-5, rtol=1e-5)


def test_cma_logits_equal_the_reference_loop(models):
    cma = _cma(num_classes=3).eval()
    feat, masks = torch.randn(4, 6, 3, 5), _masks(4, 3, 3, 5)
    torch.testing.assert_close(cma(feat, masks), _ref_cma(cma, feat, masks),
                               atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------- training behaviour
@pytest.mark.parametrize('pairs', [1, 3])
def test_cma_forward_backward_reaches_every_parameter(models, pairs):
    cma = _cma().train()
    feat = torch.randn(2 * pairs, 6, 4, 4, requires_grad=True)
    masks = _masks(2 * pairs, 3, 4, 4).requires_grad_()
    logits = cma(feat, masks)
    assert logits.shape == (2 * pairs, 3)
    logits.square().sum().backward()
    for name, param in cma.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        if name != 'segment_embedding.weight':
            assert param.grad.abs().sum() > 0, name
    seg = cma.segment_embedding.weight.grad
    assert (seg[:2].abs().sum(1) > 0).all() and (seg[2:] == 0).all()  # only rows 0 and 1
    assert feat.grad.abs().sum() > 0 and masks.grad.abs().sum() > 0


def test_pairs_are_independent_in_eval_mode(models):
    model = _classifier().eval()
    img = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        before = model(img)
        img2 = img.clone()
        img2[2:4] = torch.randn(2, 3, 32, 32)  # pair 1 replaced
        after = model(img2)
    torch.testing.assert_close(after[:2], before[:2])
    torch.testing.assert_close(after[4:], before[4:])
    assert not torch.allclose(after[2:4], before[2:4])


def test_loss_is_the_mean_bce_over_all_logits(models):
    model = _classifier(num_classes=4).eval()  # eval: no dropout, same logits twice
    img = torch.randn(4, 3, 32, 32)
    labels = torch.tensor([[1., 0., 0., 1.], [0., 1., 0., 0.], [1., 1., 1., 0.], [0., 0., 0., 1.]])
    loss = model(img, labels, mode='loss')['loss_cls']
    s = torch.sigmoid(model(img))
    by_hand = -(labels * s.log() + (1 - labels) * (1 - s).log()).sum() / (4 * 4)
    torch.testing.assert_close(loss, by_hand)
    with pytest.raises(ValueError, match='labels'):
        model(img, mode='loss')
    with pytest.raises(ValueError, match='pairs'):
        model(img[:3])


def test_training_step_under_bf16_autocast(models):
    model = _classifier().train()
    img, labels = torch.randn(2, 3, 32, 32), torch.tensor([[1., 0., 1.], [0., 0., 1.]])
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = model(img, labels, mode='loss')['loss_cls']
    loss.backward()
    assert torch.isfinite(loss) and model.cma.encoders.qkv.weight.grad is not None


# ---------------------------------------------------------------------- inference outputs
def test_cam_logits_are_the_non_negative_da_class_masks(models):
    model = _classifier(num_classes=3).eval()
    img = torch.randn(3, 3, 40, 48)  # odd batch: no pairs needed at inference
    with torch.no_grad():
        cams, mhat = model.cam_logits(img), model.da_masks(img)
    assert cams.shape == (3, 3, 5, 6) and mhat.shape == (3, 4, 5, 6)
    assert (cams >= 0).all() and (cams <= 1 + 1e-6).all()
    torch.testing.assert_close(cams, mhat[:, :3])


def test_predict_scores_da_and_cma(models):
    model = _classifier(num_classes=3).eval()
    img, labels = torch.randn(4, 3, 32, 32), torch.eye(3)[[0, 1, 2, 0]]
    with torch.no_grad():
        out = model(img, labels, mode='predict')
        assert len(out) == 4 and torch.equal(out[1]['labels'], labels[1])
        torch.testing.assert_close(torch.stack([o['scores'] for o in out]),
                                   model.cam_logits(img).mean(dim=(2, 3)))
        odd = model(img[:3], mode='predict')  # 'da' scores need no pairs
        assert len(odd) == 3 and torch.equal(odd[0]['labels'], torch.zeros(3))
        model.predict_scores = 'cma'
        out = model(img, labels, mode='predict')
        torch.testing.assert_close(torch.stack([o['scores'] for o in out]),
                                   torch.sigmoid(model(img)))


def test_predict_scores_cma_self_pairs_each_image_with_itself(models):
    model = _classifier(num_classes=3).eval()
    img = torch.randn(3, 3, 32, 32)   # odd batch: no partner needed
    model.predict_scores = 'cma_self'
    with torch.no_grad():
        scores = torch.stack([o['scores'] for o in model(img, mode='predict')])
        for n in range(3):
            pair = torch.stack([img[n], img[n]])
            torch.testing.assert_close(scores[n], torch.sigmoid(model(pair))[0])
        assert not torch.allclose(scores, model.cam_logits(img).mean(dim=(2, 3)))
    with pytest.raises(ValueError, match='predict_scores'):
        model.predict_scores = 'cma_pairs'


def test_da_masks_generator_through_multiscale_cams(models):
    from wsss_core.cams import multiscale_cams
    from wsss_core.cams.multiscale import multiscale_cams_loop
    from wsss_core.registry import CAM_GENERATORS, build
    generator = build(dict(type='DAMasks'), CAM_GENERATORS)
    model = _classifier(num_classes=3).eval()
    img = torch.randn(2, 3, 32, 40)
    cams = multiscale_cams(generator, model, img, scales=(1.0, 0.5), flip=True)
    assert cams.shape == (2, 3, 32, 40) and (cams >= 0).all() and cams.max() > 0
    loop = multiscale_cams_loop(generator, model, img, scales=(1.0, 0.5), flip=True)
    torch.testing.assert_close(cams, loop, atol=1e-5, rtol=1e-5)
    assert generator(model, img).grad_fn is None  # needs_grad False: no autograd graph


# ------------------------------------------------------------------------------ lr groups
def test_parameter_groups_by_name(models):
    _, clf = models
    model = _classifier(num_classes=3)
    groups = model.named_param_groups()
    names = {g: {n for n, _ in v} for g, v in groups.items()}
    assert names['new'] == {'da.conv.weight', 'cma.reduce.weight', 'cma.heads.weight'}
    assert 'cma.segment_embedding.weight' in names['transformer']
    assert {n.split('.')[2] for n in names['transformer'] if n.startswith('cma.encoders.')} == {
        'norm1', 'qkv', 'proj', 'norm2', 'fc1', 'fc2'}
    assert all(n.startswith('backbone.') for n in names['backbone'])
    total = sum(len(v) for v in names.values())
    assert total == sum(1 for _ in model.parameters())
    pg = {g['name']: g for g in model.param_groups(lr=0.001, weight_decay=5e-4)}
    assert pg['new']['lr'] == pytest.approx(0.01) and pg['transformer']['lr'] == 0.001
    assert pg['backbone']['lr'] == 0.001 and pg['new']['weight_decay'] == 5e-4
    with pytest.raises(KeyError):
        clf.param_group_of('classifier.weight')


def test_works_with_a_tiny_resnet38_backbone(models):
    """EDAM's backbone (ResNet-38 without the final ReLU, frozen early blocks and BN) at 1/16
    width: a training step, and the frozen parameters stay out of the lr groups."""
    from wsss_core.registry import MODELS, build
    torch.manual_seed(0)
    model = build(dict(type='EDAMClassifier', num_classes=3, cma=dict(TINY_CMA),
                       backbone=dict(type='ResNet38', width_mult=1 / 16, final_relu=False)),
                  MODELS).train()
    img, labels = torch.randn(2, 3, 32, 32), torch.tensor([[1., 0., 0.], [1., 1., 0.]])
    model(img, labels, mode='loss')['loss_cls'].backward()
    assert model.da.conv.in_channels == model.backbone.out_channels == 256
    assert model.cam_logits(img).shape == (2, 3, 4, 4)
    grouped = {n for v in model.named_param_groups().values() for n, _ in v}
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and not grouped & frozen
    assert all(p.grad is not None for n, p in model.named_parameters() if n in grouped)
