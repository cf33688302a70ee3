"""GETAMViT: hooks, flexible position embedding, attention capture and its gradients, checked
against a ViT forward written out by hand (conv patch embedding, explicit softmax attention,
a naive bilinear resize), on tiny random-weight timm models."""
from __future__ import annotations

import math

from wsss_getam.testing import registered  # noqa: F401 (fixture; also sets up the process)

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from wsss_core.io import DataFileError  # noqa: E402
from wsss_core.registry import MODELS, build  # noqa: E402
from wsss_getam.models.vit_backbone import (  # noqa: E402
    BACKBONES, TINY_BACKBONES, GETAMViT, resize_grid_pos_embed)


def tiny(kind: str, seed: int = 0, **overrides) -> GETAMViT:
    """A tiny backbone with weights spread out (timm's init gives near-uniform attention)."""
    torch.manual_seed(seed)
    model = build(dict(TINY_BACKBONES[kind], **overrides), MODELS)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.15)
    return model.eval()


def naive_bilinear(grid: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(C, H0, W0) -> (C, h, w), half-pixel centres, edge clamp (align_corners=False), by loops."""
    c, h0, w0 = grid.shape
    out = torch.zeros(c, h, w, dtype=grid.dtype)

    def taps(dst, n_src, n_dst):
        src = max((dst + 0.5) * n_src / n_dst - 0.5, 0.0)
        i0 = min(int(math.floor(src)), n_src - 1)
        i1 = min(i0 + 1, n_src - 1)
        return i0, i1, src - i0

    for y in range(h):
        y0, y1, wy = taps(y, h0, h)
        for x in range(w):
            x0, x1, wx = taps(x, w0, w)
            out[:, y, x] = ((1 - wy) * ((1 - wx) * grid[:, y0, x0] + wx * grid[:, y0, x1])
                            + wy * ((1 - wx) * grid[:, y1, x0] + wx * grid[:, y1, x1]))
    return out


def naive_forward(vit, img: torch.Tensor, prefix: int):
    """``docs/methods/getam.md`` §2.2-2.3 by hand: tokens, the blocks' outputs and their attention
    matrices."""
    b = img.shape[0]
    proj = vit.patch_embed.proj
    x = F.conv2d(img, proj.weight, proj.bias, stride=16)
    h, w = x.shape[-2:]
    x = x.flatten(2).transpose(1, 2)
    tokens = [vit.cls_token] + ([vit.dist_token] if prefix == 2 else [])
    x = torch.cat([t.expand(b, -1, -1) for t in tokens] + [x], dim=1)
    pos = vit.pos_embed[0]
    g0 = math.isqrt(pos.shape[0] - prefix)
    grid = naive_bilinear(pos[prefix:].T.reshape(-1, g0, g0), h, w).reshape(-1, h * w).T
    x = x + torch.cat([pos[:prefix], grid], dim=0)
    attns, outs = [], []
    for blk in vit.blocks:
        n, d = x.shape[1:]
        heads = blk.attn.num_heads
        qkv = blk.attn.qkv(blk.norm1(x)).reshape(b, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // heads), dim=-1)
        attns.append(attn)
        x = x + blk.attn.proj((attn @ v).transpose(1, 2).reshape(b, n, d))
        x = x + blk.mlp(blk.norm2(x))
        outs.append(x)
    return dict(tokens=vit.norm(x), blocks=outs, attentions=attns, grid=(h, w))


def test_backbone_table_pins_the_reference_tags():
    assert BACKBONES['vitb_hybrid'] == dict(model_name='vit_base_r50_s16_384.orig_in21k_ft_in1k',
                                            hook_blocks=(0, 1, 8, 11))
    assert BACKBONES['vitb']['model_name'] == 'vit_base_patch16_384.orig_in21k_ft_in1k'
    assert BACKBONES['deit']['model_name'] == 'deit_base_patch16_384.fb_in1k'
    assert BACKBONES['deit_distilled']['model_name'] == 'deit_base_distilled_patch16_384.fb_in1k'
    assert all(BACKBONES[k]['hook_blocks'] == (2, 5, 8, 11)
               for k in ('vitb', 'deit', 'deit_distilled'))


@pytest.mark.parametrize('kind,prefix', [('vit', 1), ('deit_distilled', 2)])
def test_forward_matches_a_hand_written_vit(registered, kind, prefix):  # noqa: F811
    """Non-square 48 x 80 input on a model built at 64: resized position embedding, the
    hooks, the final tokens, and the captured attention = softmax(Q K^T / sqrt(d))."""
    model = tiny(kind)
    img = torch.randn(2, 3, 48, 80)
    with torch.no_grad(), model.capturing_attention():
        out = model(img)
        ref = naive_forward(model.vit, img, prefix)
    assert model.num_prefix_tokens == prefix and out['grid'] == (3, 5) == ref['grid']
    assert out['tokens'].shape == (2, prefix + 15, 32)
    torch.testing.assert_close(out['tokens'], ref['tokens'], rtol=1e-4, atol=1e-4)
    for hook, block in zip(out['hooks'], model.hook_blocks):
        torch.testing.assert_close(hook, ref['blocks'][block], rtol=1e-4, atol=1e-4)
    for mine, theirs in zip(model.attentions, ref['attentions']):
        assert mine.shape == (2, 2, prefix + 15, prefix + 15)
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)


def test_position_embedding_resize_is_bilinear_on_the_grid_only():
    pos = torch.randn(1, 2 + 12, 3)                     # 2 prefix tokens, a 3 x 4 grid
    out = resize_grid_pos_embed(pos, 2, (3, 4), (5, 2))
    expected = naive_bilinear(pos[0, 2:].T.reshape(3, 3, 4), 5, 2).reshape(3, 10).T
    assert torch.equal(out[0, :2], pos[0, :2])
    torch.testing.assert_close(out[0, 2:], expected)
    assert resize_grid_pos_embed(pos, 2, (3, 4), (3, 4)) is pos


def test_input_must_be_a_multiple_of_the_patch_size():
    model = tiny('vit')
    with pytest.raises(ValueError, match='multiples of 16, got 50x64'):
        model(torch.randn(1, 3, 50, 64))


def test_captured_gradients_equal_autograd_on_the_hand_written_vit():
    model = tiny('deit_distilled')
    img = torch.randn(2, 3, 32, 48)
    weights = torch.randn(2, 2 + 6, 32)
    with model.capturing_attention(grads=True):
        y = (model(img)['tokens'] * weights).sum()
    ref = naive_forward(model.vit, img, 2)
    expected = torch.autograd.grad((ref['tokens'] * weights).sum(), ref['attentions'])
    by_call = model.attention_gradients(y, retain_graph=True)
    y.backward()                                        # fills attention_grads (tensor hooks)
    for hooked, called, exp in zip(model.attention_grads, by_call, expected):
        torch.testing.assert_close(hooked, exp, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(called, exp, rtol=1e-4, atol=1e-6)
    assert exp.abs().max() > 1e-3


def test_grad_from_block_builds_the_graph_from_that_block_only():
    model = tiny('vit')
    for p in model.parameters():
        p.requires_grad_(False)                         # frozen: the graph still starts there
    img = torch.randn(1, 3, 32, 32)
    with model.capturing_attention(grad_from_block=2):
        y = model(img)['tokens'].square().sum()
    assert model.attentions[:2] == [None, None]               # fused, not captured
    assert [a.requires_grad for a in model.attentions[2:]] == [True, True]
    grads = model.attention_gradients(y, blocks=[2, 3])
    with model.capturing_attention():
        img_leaf = img.clone().requires_grad_(True)
        y_full = model(img_leaf)['tokens'].square().sum()
    full = torch.autograd.grad(y_full, model.attentions[2:])
    for g, f in zip(grads, full):
        torch.testing.assert_close(g, f)


def test_capture_only_when_asked():
    model = tiny('vit')
    assert all(blk.attn.fused_attn for blk in model.vit.blocks)
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    assert model.attentions == [None] * 4               # the fused path: nothing kept
    with model.capturing_attention(), torch.no_grad():
        assert not any(blk.attn.fused_attn for blk in model.vit.blocks)
        model(torch.randn(1, 3, 32, 32))
    assert all(a is not None for a in model.attentions)
    assert all(blk.attn.fused_attn for blk in model.vit.blocks)
    model.capture_attention = True
    assert not model.vit.blocks[0].attn.fused_attn


def test_hybrid_hooks_are_resnet_stages_then_tokens():
    model = tiny('hybrid')
    img = torch.randn(2, 3, 48, 64)
    with torch.no_grad():
        out = model(img)
        resnet = model.vit.patch_embed.backbone
        stage0 = resnet.stages[0](resnet.stem(img))
        stage1 = resnet.stages[1](stage0)
    assert model.is_hybrid and model.patch_size == 16 and out['grid'] == (3, 4)
    assert model.hook_channels == [16, 32, 32, 32]
    assert out['hooks'][0].shape == (2, 16, 12, 16) and out['hooks'][1].shape == (2, 32, 6, 8)
    torch.testing.assert_close(out['hooks'][0], stage0)
    torch.testing.assert_close(out['hooks'][1], stage1)
    assert [tuple(t.shape) for t in out['hooks'][2:]] == [(2, 13, 32)] * 2


def test_checkpoint_from_a_local_file(tmp_path):
    source = tiny('vit', seed=3)
    path = tmp_path / 'vit.pth'
    torch.save(source.vit.state_dict(), path)
    loaded = build(dict(TINY_BACKBONES['vit'], checkpoint=str(path)), MODELS).eval()
    img = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(loaded(img)['tokens'], source(img)['tokens'])
    assert loaded.missing_keys == []
    with pytest.raises(DataFileError, match='not found'):
        GETAMViT('vit_tiny_patch16_224', checkpoint=str(tmp_path / 'none.pth'), img_size=64,
                 embed_dim=32, depth=4, num_heads=2)


def test_pretrained_reads_the_local_cache_only(monkeypatch, tmp_path):
    import huggingface_hub
    monkeypatch.setattr(huggingface_hub, 'try_to_load_from_cache', lambda *a, **k: None)
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path))
    with pytest.raises(DataFileError, match='checkpoint=<local weight file>'):
        GETAMViT('deit_tiny_patch16_224.fb_in1k', pretrained=True, img_size=64, embed_dim=32,
                 depth=4, num_heads=2)


@pytest.mark.parametrize('kind', ['vit', 'hybrid'])
def test_pretrained_state_dict_comes_back_through_checkpoint(kind, tmp_path):
    """What a Pretrain stage writes (wsss_core.models.weights.pretrained_state_dict) loads
    back through the option the class names (checkpoint=), every tensor equal."""
    from wsss_core.models.weights import pretrained_option, pretrained_state_dict
    source = tiny(kind, seed=3)
    path = tmp_path / 'vit.pth'
    torch.save(pretrained_state_dict(source), path)
    assert pretrained_option(GETAMViT) == 'checkpoint'
    loaded = build(dict(TINY_BACKBONES[kind], checkpoint=str(path)), MODELS)
    assert loaded.missing_keys == []
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
