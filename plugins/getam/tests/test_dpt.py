"""The DPT pieces of GETAM (``docs/methods/getam.md#23-the-network``) against naive
re-implementations: the project readout (token loop), reassemble strides and pass-through, the
residual conv unit and SE block (eval BN written out), the fusion block and head with a
hand-written align_corners bilinear upsampling, and the decoder's path sizes and wiring."""
from __future__ import annotations

import wsss_getam.testing  # noqa: F401 (sets up the test process)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from wsss_getam.models.dpt import (  # noqa: E402
    DPTDecoder, FeatureFusionBlock, ProjectReadout, Reassemble, ResidualConvUnit, SEBlock,
    SegmentationHead, TokenReassemble, default_reassemble_channels)


def gelu(x):
    return 0.5 * x * (1.0 + np.vectorize(__import__('math').erf)(x / np.sqrt(2.0)))


def up2_align_corners(x: np.ndarray) -> np.ndarray:
    """x2 bilinear upsampling with align_corners=True of a (C, h, w) array, by its definition:
    output pixel i samples the input at i * (n - 1) / (2n - 1)."""
    c, h, w = x.shape
    out = np.zeros((c, 2 * h, 2 * w))
    for i in range(2 * h):
        y = i * (h - 1) / (2 * h - 1) if h > 1 else 0.0
        y0 = int(np.floor(y)); y1 = min(y0 + 1, h - 1); fy = y - y0
        for j in range(2 * w):
            xx = j * (w - 1) / (2 * w - 1) if w > 1 else 0.0
            x0 = int(np.floor(xx)); x1 = min(x0 + 1, w - 1); fx = xx - x0
            out[:, i, j] = ((1 - fy) * (1 - fx) * x[:, y0, x0] + (1 - fy) * fx * x[:, y0, x1]
                            + fy * (1 - fx) * x[:, y1, x0] + fy * fx * x[:, y1, x1])
    return out


def eval_bn(x: np.ndarray, bn: nn.BatchNorm2d) -> np.ndarray:
    """(x - running_mean) / sqrt(running_var + eps) * gamma + beta, per channel of (C, h, w)."""
    g = lambda t: t.detach().numpy()[:, None, None]  # noqa: E731
    return (x - g(bn.running_mean)) / np.sqrt(g(bn.running_var) + bn.eps) * g(bn.weight) \
        + g(bn.bias)


def conv3x3(x: np.ndarray, conv: nn.Conv2d) -> np.ndarray:
    """A padded 3x3 convolution of a (C, h, w) array as an explicit sum over the taps."""
    w = conv.weight.detach().numpy()
    c, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    out = np.zeros((w.shape[0], h, wd))
    for dy in range(3):
        for dx in range(3):
            out += np.einsum('oc,chw->ohw', w[:, :, dy, dx], xp[:, dy:dy + h, dx:dx + wd])
    if conv.bias is not None:
        out += conv.bias.detach().numpy()[:, None, None]
    return out


def randomise_bn(module: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g))


# ---------------------------------------------------------------------------- readout


@pytest.mark.parametrize('prefix', [1, 2])
def test_project_readout_matches_a_token_loop(prefix):
    torch.manual_seed(0)
    d, h, w = 6, 2, 3
    readout = ProjectReadout(d, num_prefix_tokens=prefix)
    tokens = torch.randn(2, prefix + h * w, d)
    out = readout(tokens, (h, w)).detach().numpy()
    assert out.shape == (2, d, h, w)
    W = readout.project.weight.detach().numpy(); b = readout.project.bias.detach().numpy()
    t = tokens.numpy()
    for n in range(2):
        for p in range(h * w):
            joined = np.concatenate([t[n, prefix + p], t[n, 0]])  # patch token, class token
            np.testing.assert_allclose(out[n, :, p // w, p % w], gelu(W @ joined + b),
                                       rtol=1e-5, atol=1e-6)


def test_project_readout_ignores_the_distillation_token():
    torch.manual_seed(1)
    readout = ProjectReadout(4, num_prefix_tokens=2)
    tokens = torch.randn(1, 2 + 4, 4)
    other = tokens.clone()
    other[:, 1] += 5.0   # distillation token
    torch.testing.assert_close(readout(tokens, (2, 2)), readout(other, (2, 2)))
    other[:, 0] += 5.0   # class token
    assert not torch.allclose(readout(tokens, (2, 2)), readout(other, (2, 2)))


def test_project_readout_rejects_a_grid_that_does_not_fit():
    with pytest.raises(ValueError, match='grid'):
        ProjectReadout(4)(torch.randn(1, 1 + 6, 4), (2, 2))


# ---------------------------------------------------------------------------- reassemble


def test_default_reassemble_channels():
    assert default_reassemble_channels(768) == (96, 192, 384, 768)
    assert default_reassemble_channels(1024) == (256, 512, 1024, 1024)
    assert default_reassemble_channels(768, True, [256, 512, 768, 768]) == (256, 512, 768, 768)
    assert default_reassemble_channels(64) == (8, 16, 32, 64)
    with pytest.raises(ValueError, match='hook_channels'):
        default_reassemble_channels(768, True)


def test_plain_reassemble_strides_4_8_16_32_on_a_non_square_grid():
    torch.manual_seed(0)
    d, h, w = 16, 4, 6                       # a 64 x 96 input
    re = Reassemble(d, (3, 5, 7, 9))
    hooks = [torch.randn(2, 1 + h * w, d) for _ in range(4)]
    out = re(hooks, (h, w))
    assert [tuple(o.shape) for o in out] == [(2, 3, 16, 24), (2, 5, 8, 12), (2, 7, 4, 6),
                                             (2, 9, 2, 3)]
    b = re.branches
    assert isinstance(b[0].resample, nn.ConvTranspose2d) and b[0].resample.stride == (4, 4) \
        and b[0].resample.kernel_size == (4, 4)
    assert isinstance(b[1].resample, nn.ConvTranspose2d) and b[1].resample.stride == (2, 2) \
        and b[1].resample.kernel_size == (2, 2)
    assert isinstance(b[2].resample, nn.Identity)
    assert isinstance(b[3].resample, nn.Conv2d) and b[3].resample.stride == (2, 2) \
        and b[3].resample.kernel_size == (3, 3) and b[3].resample.padding == (1, 1)
    # level 3 is exactly the 1x1 projection of the readout map
    r = b[2].readout(hooks[2], (h, w))
    expect = torch.einsum('oc,bchw->bohw', b[2].proj.weight[:, :, 0, 0], r) \
        + b[2].proj.bias[None, :, None, None]
    torch.testing.assert_close(out[2], expect)


def test_transposed_conv_level_places_each_token_in_its_own_4x4_cell():
    torch.manual_seed(0)
    branch = TokenReassemble(8, 3, scale=4.0)
    hooks = torch.randn(1, 1 + 2 * 2, 8)
    out = branch(hooks, (2, 2))
    proj = branch.proj(branch.readout(hooks, (2, 2)))          # (1, 3, 2, 2)
    k = branch.resample.weight                                  # (in 3, out 3, 4, 4)
    for i in range(2):
        for j in range(2):
            cell = torch.einsum('i,iokl->okl', proj[0, :, i, j], k) \
                + branch.resample.bias[:, None, None]
            torch.testing.assert_close(out[0, :, 4 * i:4 * i + 4, 4 * j:4 * j + 4], cell)


def test_hybrid_reassemble_passes_the_resnet_maps_through():
    torch.manual_seed(0)
    d = 16
    re = Reassemble(d, None, is_hybrid=True, hook_channels=[6, 10, d, d])
    assert re.out_channels == (6, 10, d, d)
    t1, t2 = torch.randn(1, 6, 16, 8), torch.randn(1, 10, 8, 4)
    hooks = [t1, t2, torch.randn(1, 1 + 8, d), torch.randn(1, 1 + 8, d)]
    out = re(hooks, (4, 2))
    assert out[0] is t1 and out[1] is t2
    assert tuple(out[2].shape) == (1, d, 4, 2) and tuple(out[3].shape) == (1, d, 2, 1)
    assert sum(p.numel() for p in re.branches[0].parameters()) == 0
    with pytest.raises(ValueError, match='ResNet map'):
        re([torch.randn(1, 7, 16, 8)] + hooks[1:], (4, 2))
    with pytest.raises(ValueError, match='hook channels'):
        Reassemble(d, (8, 10, d, d), is_hybrid=True, hook_channels=[6, 10, d, d])


# ---------------------------------------------------------------------------- RCU, fusion


def test_residual_conv_unit_matches_the_formula_in_eval_mode():
    torch.manual_seed(0)
    rcu = ResidualConvUnit(3).eval()
    randomise_bn(rcu)
    assert rcu.conv1.bias is None and rcu.conv2.bias is None
    x = torch.randn(1, 3, 5, 4)
    xn = x[0].numpy()
    inner = eval_bn(conv3x3(np.maximum(xn, 0), rcu.conv1), rcu.bn1)
    expect = xn + eval_bn(conv3x3(np.maximum(inner, 0), rcu.conv2), rcu.bn2)
    np.testing.assert_allclose(rcu(x)[0].detach().numpy(), expect, rtol=1e-4, atol=1e-5)


def make_identity_fusion(channels: int, with_skip: bool) -> FeatureFusionBlock:
    """A fusion block whose RCUs are the identity (last BN scaled to 0) and whose 1x1 conv is
    the identity: it reduces to up2(x + s)."""
    block = FeatureFusionBlock(channels, with_skip).eval()
    for rcu in (block.skip_unit, block.unit):
        if rcu is not None:
            rcu.bn2.weight.data.zero_(); rcu.bn2.bias.data.zero_()
    block.out_conv.weight.data.copy_(torch.eye(channels)[:, :, None, None])
    block.out_conv.bias.data.zero_()
    return block


def test_fusion_block_adds_the_skip_then_upsamples_with_align_corners():
    torch.manual_seed(0)
    block = make_identity_fusion(2, with_skip=True)
    x, s = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4)
    out = block(x, s)[0].detach().numpy()
    np.testing.assert_allclose(out, up2_align_corners((x + s)[0].numpy()), rtol=1e-5, atol=1e-6)
    coarse = make_identity_fusion(2, with_skip=False)
    assert coarse.skip_unit is None
    np.testing.assert_allclose(coarse(x)[0].detach().numpy(), up2_align_corners(x[0].numpy()),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match='no skip'):
        coarse(x, s)
    with pytest.raises(ValueError, match='multiples of 32'):
        block(x, torch.randn(1, 2, 4, 4))


def test_fusion_block_general_case_composes_rcu1_rcu2_up2_conv1x1():
    torch.manual_seed(2)
    block = FeatureFusionBlock(3).eval()
    randomise_bn(block, seed=3)
    x, s = torch.randn(1, 3, 2, 3), torch.randn(1, 3, 2, 3)
    W = block.out_conv.weight.detach().numpy()[:, :, 0, 0]
    b = block.out_conv.bias.detach().numpy()
    with torch.no_grad():
        merged = (x + block.skip_unit(s))
        fused = block.unit(merged)[0].numpy()
    expect = np.einsum('oc,chw->ohw', W, up2_align_corners(fused)) + b[:, None, None]
    np.testing.assert_allclose(block(x, s)[0].detach().numpy(), expect, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------- decoder


@pytest.mark.parametrize('in_channels', [(4, 6, 8, 10), (6, 10, 16, 16)])
def test_decoder_paths_double_from_stride_16_to_2(in_channels):
    torch.manual_seed(0)
    dec = DPTDecoder(in_channels, features=8)
    sizes = [(64, 96), (32, 48), (16, 24), (8, 12)]    # strides 4..32 of a 256 x 384 input
    feats = [torch.randn(1, c, *s) for c, s in zip(in_channels, sizes)]
    paths = dec.paths(feats)
    assert [tuple(p.shape[-2:]) for p in paths] == [(16, 24), (32, 48), (64, 96), (128, 192)]
    assert all(p.shape[1] == 8 for p in paths)
    for i, c in enumerate(in_channels, 1):
        conv = getattr(dec, f'layer{i}_rn')
        assert conv.in_channels == c and conv.kernel_size == (3, 3) and conv.bias is None
    paths[-1].sum().backward()
    assert all(p.grad is not None for p in dec.parameters()), 'the decoder has unused parameters'


def test_decoder_wiring_path3_fuses_path4_with_level3():
    torch.manual_seed(0)
    dec = DPTDecoder((2, 2, 2, 2), features=2).eval()
    identity3x3 = torch.zeros(2, 2, 3, 3)
    identity3x3[[0, 1], [0, 1], 1, 1] = 1.0
    for i in range(1, 5):
        getattr(dec, f'layer{i}_rn').weight.data.copy_(identity3x3)
        setattr(dec, f'refinenet{i}', make_identity_fusion(2, with_skip=i < 4))
    l1, l2, l3, l4 = (torch.randn(1, 2, s, s) for s in (16, 8, 4, 2))
    p4, p3, p2, p1 = dec.paths([l1, l2, l3, l4])
    e4 = up2_align_corners(l4[0].numpy())
    e3 = up2_align_corners(e4 + l3[0].numpy())
    e2 = up2_align_corners(e3 + l2[0].numpy())
    e1 = up2_align_corners(e2 + l1[0].numpy())
    for got, want in zip((p4, p3, p2, p1), (e4, e3, e2, e1)):
        np.testing.assert_allclose(got[0].detach().numpy(), want, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------- SE, head


def test_se_block_matches_the_formula():
    torch.manual_seed(0)
    se = SEBlock(8, reduction=4)
    assert se.conv1.bias is not None and se.conv2.bias is not None
    assert se.fc1.bias is None and se.fc2.bias is None
    assert (se.fc1.in_features, se.fc1.out_features) == (8, 2)
    x = torch.randn(1, 8, 3, 5)
    xn = x[0].numpy()
    u = conv3x3(np.maximum(conv3x3(xn, se.conv1), 0), se.conv2)
    z = u.reshape(8, -1).mean(1)
    s = 1 / (1 + np.exp(-(se.fc2.weight.detach().numpy()
                          @ np.maximum(se.fc1.weight.detach().numpy() @ z, 0))))
    np.testing.assert_allclose(se(x)[0].detach().numpy(), u * s[:, None, None] + xn,
                               rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        se.conv2.weight.zero_(); se.conv2.bias.zero_()
    torch.testing.assert_close(se(x), x)      # a zero body leaves the residual only


def test_segmentation_head_matches_the_formula_in_eval_mode():
    torch.manual_seed(0)
    head = SegmentationHead(4, num_outputs=3).eval()
    randomise_bn(head)
    assert head.conv.bias is None and head.classifier.bias is not None
    assert isinstance(head.dropout, nn.Dropout) and head.dropout.p == 0.1
    x = torch.randn(1, 4, 3, 5)
    hid = np.maximum(eval_bn(conv3x3(x[0].numpy(), head.conv), head.bn), 0)
    W = head.classifier.weight.detach().numpy()[:, :, 0, 0]
    logits = np.einsum('oc,chw->ohw', W, hid) + head.classifier.bias.detach().numpy()[:, None,
                                                                                       None]
    out = head(x)
    assert tuple(out.shape) == (1, 3, 6, 10)
    np.testing.assert_allclose(out[0].detach().numpy(), up2_align_corners(logits),
                               rtol=1e-4, atol=1e-5)


def test_segmentation_head_dropout_is_active_in_training_only():
    torch.manual_seed(0)
    head = SegmentationHead(8, 2, dropout=0.5)
    x = torch.randn(2, 8, 4, 4)
    head.train()
    a, b = head(x), head(x)
    assert not torch.allclose(a, b)
    head.eval()
    torch.testing.assert_close(head(x), head(x))


def test_bilinear_reference_agrees_with_torch():
    """The hand-written upsampling used above is itself right (checked once against torch)."""
    x = torch.randn(1, 2, 3, 4)
    np.testing.assert_allclose(
        up2_align_corners(x[0].numpy()),
        F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=True)[0].numpy(),
        rtol=1e-5, atol=1e-6)
