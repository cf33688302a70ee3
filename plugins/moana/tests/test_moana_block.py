"""The MoANA block (``docs/methods/moana.md#2-the-block``): the formula, presets, parameter count,
BatchNorm modes."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from wsss_moana.testing import registered  # noqa: F401 (fixture)
from wsss_moana.models.moana_block import MoANABlock, WithMoANA


def naive_moana(block: MoANABlock, x: torch.Tensor) -> torch.Tensor:
    """The formula written out per axis with the block's weights (training-mode BN)."""
    n, c, h, w = x.shape

    def bn(t, norm):   # batch statistics over every dim but the channel, biased variance
        mean = t.mean(dim=(0, 2, 3), keepdim=True)
        var = t.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        return (t - mean) / torch.sqrt(var + norm.eps) * norm.weight.view(1, -1, 1, 1) \
            + norm.bias.view(1, -1, 1, 1)

    k = block.conv_c.weight.view(-1)                     # 3 taps along the channel axis
    d_c = F.pad(x.mean(dim=(2, 3)), (1, 1))              # (N, C + 2), zero padding
    conv_c = k[0] * d_c[:, :-2] + k[1] * d_c[:, 1:-1] + k[2] * d_c[:, 2:]
    z_c = torch.sigmoid(bn(conv_c.view(n, c, 1, 1), block.bn_c))
    d_h = F.pad(x.mean(dim=3), (1, 1))                   # (N, C, H + 2)
    conv_h = sum(torch.einsum('oc,nch->noh', block.conv_h.weight[:, :, t], d_h[:, :, t:t + h])
                 for t in range(3))
    z_h = torch.sigmoid(bn(conv_h.view(n, c, h, 1), block.bn_h))
    d_w = F.pad(x.mean(dim=2), (1, 1))
    conv_w = sum(torch.einsum('oc,ncw->now', block.conv_w.weight[:, :, t], d_w[:, :, t:t + w])
                 for t in range(3))
    z_w = torch.sigmoid(bn(conv_w.view(n, c, 1, w), block.bn_w))
    return x * (block.base + block.gain * (z_c + z_h + z_w))


def test_parameter_count_at_2048_channels():
    # 2 x 2048 x 2048 x 3 (the C -> C 1-D convs) + 3 (the channel conv) + 3 BN x 2 x 2048
    assert sum(p.numel() for p in MoANABlock(2048).parameters()) == 25_178_115


@pytest.mark.parametrize('preset,base,gain', [('wsol', 1.0, 1.0), ('wsss', 0.35, 0.65)])
def test_block_equals_the_formula_and_keeps_the_shape(preset, base, gain):
    torch.manual_seed(0)
    block = MoANABlock(6, preset=preset).train()
    assert (block.base, block.gain) == (base, gain)
    with torch.no_grad():
        for norm in (block.bn_c, block.bn_h, block.bn_w):   # non-trivial affine parameters
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    x = torch.randn(3, 6, 5, 7)
    out = block(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, naive_moana(block, x), rtol=1e-5, atol=1e-5)
    att = block.attention(x)
    assert att.shape == x.shape and bool((att > 0).all() and (att < 3).all())


def test_presets_overrides_and_bad_options():
    assert (MoANABlock(4, preset='wsss', gain=0.5).base, MoANABlock(4, gain=0.5).gain) == \
        (0.35, 0.5)
    with pytest.raises(ValueError, match='presets'):
        MoANABlock(4, preset='seg')
    with pytest.raises(ValueError, match='inference_bn'):
        MoANABlock(4, inference_bn='frozen')
    with pytest.raises(ValueError, match='at least 2'):
        MoANABlock(4).train()(torch.randn(1, 4, 3, 3))


def test_inference_bn_running_versus_batch_statistics():
    torch.manual_seed(0)
    x = torch.randn(4, 5, 6, 6)
    running = MoANABlock(5, inference_bn='running')
    batch = MoANABlock(5, inference_bn='batch')
    batch.load_state_dict(running.state_dict())
    for block in (running, batch):       # one training step of statistics
        block.train()(x)
        block.eval()
    stats = batch.bn_h.running_mean.clone()
    y = torch.randn(2, 5, 6, 6) * 3 + 1
    out_batch = batch(y)
    assert torch.equal(batch.bn_h.running_mean, stats)   # eval never updates the statistics
    # 'batch' in eval equals the training-mode formula on that batch; 'running' does not
    torch.testing.assert_close(out_batch, naive_moana(batch, y), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(running(y), out_batch, atol=1e-3)
    # 'running': an image's output does not depend on the rest of its batch
    torch.testing.assert_close(running(y)[:1], running(y[:1]))
    four = torch.cat([y, y * 2 - 1])
    assert not torch.allclose(batch(four)[:2], batch(y), atol=1e-4)
    with pytest.raises(ValueError, match='at least 2'):
        batch(y[:1])


@pytest.mark.parametrize('mode', ['batch', 'running'])
def test_sync_bn_conversion_keeps_the_inference_bn_mode(mode):
    """``sync_bn=True`` (distributed CUDA runs) makes mmengine replace every BatchNorm, a
    subclass too, by a plain SyncBatchNorm; run here on the CPU, in eval mode: the block's
    outputs in either mode, its ``inference_bn`` and its repr are those of the block before."""
    import copy
    from mmengine.model import convert_sync_batchnorm
    torch.manual_seed(0)
    block = MoANABlock(5, inference_bn=mode)
    block.train()(torch.randn(4, 5, 6, 6))          # running statistics away from 0 / 1
    y = torch.randn(2, 5, 6, 6) * 3 + 1
    expected = block.eval()(y)
    synced = convert_sync_batchnorm(copy.deepcopy(block), 'torch').eval()
    assert {type(m).__name__ for m in (synced.bn_c, synced.bn_h, synced.bn_w)} == \
        {'SyncBatchNorm'}
    assert synced.inference_bn == mode and f'inference_bn={mode!r}' in repr(synced)
    torch.testing.assert_close(synced(y), expected)


def test_with_moana_wraps_any_backbone_and_can_be_disabled(registered):
    small = dict(type='SmallResNet', widths=(8, 8, 16, 16))
    net = WithMoANA(backbone=small, moana=dict(preset='wsss')).eval()
    plain = WithMoANA(backbone=small, enabled=False).eval()
    assert net.out_channels == 16 and net.output_stride == 8 and plain.moana is None
    x = torch.randn(2, 3, 32, 32)
    plain.backbone.load_state_dict(net.backbone.state_dict())
    feat = plain(x)
    torch.testing.assert_close(net(x), net.moana(feat))
    timm_net = WithMoANA(backbone=dict(type='TimmBackbone', model_name='resnet18',
                                       output_stride=16))
    assert timm_net.moana.channels == 512 and timm_net(torch.randn(2, 3, 64, 64)).shape == \
        (2, 512, 4, 4)


def test_with_moana_on_a_multi_level_backbone_calibrates_the_last_level(registered):
    levels = dict(type='SmallResNet', widths=(8, 8, 16, 16), out_indices=(0, 2, 4))
    net = WithMoANA(backbone=levels).eval()
    assert net.channels == [8, 8, 16] and net.reductions == [2, 4, 8]
    x = torch.randn(2, 3, 32, 32)
    raw, out = net.backbone(x), net(x)
    torch.testing.assert_close(out[:2], raw[:2])
    torch.testing.assert_close(out[2], net.moana(raw[2]))
