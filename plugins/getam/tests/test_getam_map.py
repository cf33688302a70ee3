"""The GETAM map: one (image, class) against a direct autograd computation written here, the
batched map against the per-(image, class) reference, the shared-forward path of the joint
phase, and GETAMCAM through the core's multi-scale inference."""
from __future__ import annotations

from wsss_getam.testing import registered  # noqa: F401 (fixture; also sets up the process)

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from wsss_core.cams import multiscale_cams  # noqa: E402
from wsss_core.registry import CAM_GENERATORS, MODELS, build  # noqa: E402
from wsss_getam.getam_map import (  # noqa: E402
    GETAMCAM, getam_maps, getam_maps_from_logits, getam_maps_reference)
from wsss_getam.models.vit_backbone import TINY_BACKBONES  # noqa: E402

START = 2          # tiny models have 4 blocks: the last two, as 6 of 12 in the reference
CLASSES = 5
LABELS = [[1, 3], [], [0, 2, 4]]


class TinyGETAM(nn.Module):
    """A tiny ViT and a class head on its last hook's patch tokens (B, C)."""

    def __init__(self, kind: str, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.backbone = build(TINY_BACKBONES[kind], MODELS)
        self.head = nn.Linear(32, CLASSES)
        gen = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():   # spread the weights: timm's init gives near-uniform attention
            for p in self.parameters():
                if p.dim() >= 2:
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.15)
        self.eval()

    def cls_logits(self, img):
        tokens = self.backbone(img)['hooks'][-1]
        return self.head(tokens[:, self.backbone.num_prefix_tokens:].mean(1))


def direct_map(model, img, b: int, c: int, prefix: int, start: int = START) -> torch.Tensor:
    """The GETAM map (``docs/methods/getam.md#24-the-getam-map``) written out for one (image,
    class): full N x N products, loop over blocks."""
    with model.backbone.capturing_attention():
        logit = model.cls_logits(img)[b, c]
        attns = model.backbone.attentions[start:]
        grads = torch.autograd.grad(logit, attns)
    s = 0
    for a, g in zip(attns, grads):
        a, g = a[b].detach(), g[b]                               # (heads, N, N)
        s = s + torch.relu(g * a).mean(0) * torch.relu(g).mean(0)
    h, w = img.shape[2] // 16, img.shape[3] // 16
    v = torch.relu(s[0, prefix:]).reshape(1, 1, h, w)
    return F.interpolate(v, size=img.shape[2:], mode='bilinear', align_corners=True)[0, 0]


@pytest.mark.parametrize('kind,prefix', [('vit', 1), ('deit_distilled', 2), ('hybrid', 1)])
def test_one_map_equals_the_direct_computation(registered, kind, prefix):  # noqa: F811
    model = TinyGETAM(kind)
    img = torch.randn(2, 3, 48, 64)
    expected = direct_map(model, img, b=1, c=2, prefix=prefix)
    maps = getam_maps(model.cls_logits, model.backbone, img, [[], [2]], start_layer=START)
    ref = getam_maps_reference(model.cls_logits, model.backbone, img, [[], [2]], START)
    assert maps.shape == (2, CLASSES, 48, 64)
    assert expected.max() > 0 and (expected > 0).float().mean() > 0.2
    torch.testing.assert_close(maps[1, 2], expected, rtol=1e-4, atol=1e-7 * expected.max())
    torch.testing.assert_close(ref[1, 2], expected, rtol=1e-4, atol=1e-7 * expected.max())
    others = torch.ones(2, CLASSES, dtype=torch.bool)
    others[1, 2] = False
    assert maps[others].abs().max() == 0 and ref[others].abs().max() == 0


@pytest.mark.parametrize('kind', ['vit', 'hybrid'])
@pytest.mark.parametrize('grads_batched', [False, True])
def test_batched_equals_reference_with_mixed_label_counts(kind, grads_batched):
    model = TinyGETAM(kind)
    img = torch.randn(3, 3, 32, 48)
    sentinel = [torch.full_like(p, 7.0) for p in model.parameters()]
    for p, s in zip(model.parameters(), sentinel):
        p.grad = s.clone()
    ref = getam_maps_reference(model.cls_logits, model.backbone, img, LABELS, START)
    multi_hot = torch.zeros(3, CLASSES)
    for b, ids in enumerate(LABELS):
        multi_hot[b, ids] = 1
    maps = getam_maps(model.cls_logits, model.backbone, img, multi_hot, START,
                      grads_batched=grads_batched)
    scale = ref.abs().max()
    torch.testing.assert_close(maps, ref, rtol=1e-4, atol=1e-6 * scale)
    for b, ids in enumerate(LABELS):
        for c in range(CLASSES):
            assert (ref[b, c].max() > 0) == (c in ids)
    for p, s in zip(model.parameters(), sentinel):      # neither touched the .grad
        assert torch.equal(p.grad, s)


def test_maps_from_a_shared_forward_leave_the_training_backward_intact():
    model = TinyGETAM('vit')
    img = torch.randn(3, 3, 32, 32)
    with model.backbone.capturing_attention():
        logits = model.cls_logits(img)
        maps = getam_maps_from_logits(logits, model.backbone, LABELS, (32, 32), START,
                                      retain_graph=True)
    (logits ** 2).sum().backward()
    grads = [p.grad for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    (model.cls_logits(img) ** 2).sum().backward()
    assert sum(g is not None for g in grads) > 20     # (the final norm is not used: None)
    for g, p in zip(grads, model.parameters()):
        assert (g is None) == (p.grad is None)
        if g is not None:
            torch.testing.assert_close(g, p.grad)
    ref = getam_maps_reference(model.cls_logits, model.backbone, img, LABELS, START)
    torch.testing.assert_close(maps, ref, rtol=1e-4, atol=1e-6 * ref.abs().max())


def _reference_multiscale(model, img, labels, scales, divisor):
    """The core's multi-scale + flip sum, written with the per-(image, class) reference."""
    size = img.shape[-2:]
    total = 0
    for s in scales:
        h, w = round(size[0] * s), round(size[1] * s)
        x = F.interpolate(img, size=(h, w), mode='bilinear', align_corners=False) \
            if s != 1.0 else img
        fit = tuple(max(divisor, round(n / divisor) * divisor) for n in (h, w))
        for flip in (False, True):
            xi = x.flip(-1) if flip else x
            xi = F.interpolate(xi, size=fit, mode='bilinear', align_corners=False) \
                if fit != (h, w) else xi
            m = getam_maps_reference(model.cls_logits, model.backbone, xi, labels, START)
            m = F.interpolate(m, size=(h, w), mode='bilinear', align_corners=False) \
                if fit != (h, w) else m
            m = m.flip(-1) if flip else m
            total = total + F.interpolate(m, size=size, mode='bilinear', align_corners=False)
    return total


@pytest.mark.parametrize('size', [(64, 96), (40, 56)])
def test_getamcam_through_multiscale_cams(size):
    model = TinyGETAM('deit_distilled')
    gen = build(dict(type='GETAMCAM', start_layer=START, size_divisor=16), CAM_GENERATORS)
    img = torch.randn(2, 3, *size)
    labels = [[0, 4], [3]]
    with torch.inference_mode(not gen.needs_grad):
        out = multiscale_cams(gen, model, img, scales=(1.0, 0.5), flip=True, class_ids=labels)
    expected = _reference_multiscale(model, img, labels, (1.0, 0.5), 16)
    assert out.shape == (2, CLASSES) + size
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-6 * expected.abs().max())
    assert out[0, 1:4].abs().max() == 0 and out[1, 3].max() > 0


def test_bad_arguments_say_what_to_do():
    model = TinyGETAM('vit')
    img = torch.randn(2, 3, 32, 32)
    with pytest.raises(ValueError, match='start_layer=4 outside 0..3'):
        getam_maps(model.cls_logits, model.backbone, img, [[0], [1]], start_layer=4)
    with pytest.raises(ValueError, match=r'\(B, C\) multi-hot'):
        getam_maps(model.cls_logits, model.backbone, img, torch.ones(2, 3), START)
    with pytest.raises(ValueError, match='2 entries for a batch of'):
        getam_maps(model.cls_logits, model.backbone, img[:1], [[0], [1]], START)
    with pytest.raises(AttributeError, match='cls_logits'):
        GETAMCAM(start_layer=START)(nn.Module(), img)
