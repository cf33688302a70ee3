"""The CAM family (CAM, Grad-CAM, Grad-CAM++, Layer-CAM, Score-CAM, grad-cam adapter).

Hand computations used below.  For the CAM classifier, y_c = sum_k w_ck GAP(A^k) with A the
backbone features (B, K, h, w), so the gradient is the same at every location:

    dy_c / dA^k(x, y) = w_ck / (h w)

which gives
    Grad-CAM:   alpha_ck = w_ck / (hw)           M_c = ReLU(sum_k w_ck A^k) / (hw) = CAM / (hw)
    Layer-CAM:  M_c = ReLU(sum_k ReLU(w_ck) A^k) / (hw)
    Grad-CAM++: g = w_ck / (hw), S_k = sum_xy A^k:  a = g^2 / (2 g^2 + S_k g^3),
                weight_k = hw a ReLU(g),  M_c = ReLU(sum_k weight_k A^k)

For the quadratic toy model y_c = sum_k v_ck mean_xy (A^k)^2 (A = the input itself) the
gradient varies in space, dy_c / dA^k = 2 v_ck A^k / (hw), which separates Grad-CAM from
Layer-CAM.
"""
from __future__ import annotations

import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from wsss_core.cams import CAM, multiscale_cams, multiscale_cams_loop
from wsss_core.cams import pytorch_grad_cam_adapter  # noqa: F401  (registers GradCAMPackage)
from wsss_core.cams.gradient import GradCAM, GradCAMPlusPlus, LayerCAM, capture_target
from wsss_core.cams.score_cam import ScoreCAM, minmax
from wsss_core.models.cam_classifier import CAMClassifier
from wsss_core.registry import CAM_GENERATORS, build

try:
    import pytorch_grad_cam  # noqa: F401
    HAS_PACKAGE = True
except ImportError:
    HAS_PACKAGE = False

METHODS = [CAM, GradCAM, GradCAMPlusPlus, LayerCAM, ScoreCAM]
GRADIENT = [GradCAM, GradCAMPlusPlus, LayerCAM]


def tiny_model():
    torch.manual_seed(0)
    model = CAMClassifier(backbone=dict(type='SmallResNet', widths=(8, 8, 16, 16)), num_classes=3)
    return model.eval()


def features(model, img):
    with torch.no_grad():
        return model.extract_feat(img)


class Quadratic(nn.Module):
    """y_c = sum_k v_ck mean_xy A_k(x, y)^2 with A = the input (K channels)."""

    def __init__(self, v: torch.Tensor):
        super().__init__()
        self.v = nn.Parameter(v)
        self.num_classes = v.shape[0]

    def extract_feat(self, x):
        return x

    def logits(self, x):
        a = self.extract_feat(x)
        return torch.einsum('ck,bk->bc', self.v, a.pow(2).mean(dim=(2, 3)))


@pytest.mark.parametrize('method', METHODS, ids=lambda m: m.__name__)
def test_shape_range_and_batching(core_registered, method):
    model, img = tiny_model(), torch.randn(3, 3, 40, 32)
    maps = method()(model, img)
    assert maps.shape == (3, 3, 5, 4)                      # (B, C, H/8, W/8)
    assert torch.isfinite(maps).all() and (maps >= 0).all() and maps.max() > 0
    single = torch.cat([method()(model, img[i:i + 1]) for i in range(3)])
    assert torch.allclose(maps, single, rtol=1e-4, atol=1e-7 * maps.max().item())


def test_all_names_are_registered(core_registered):
    for name in ('CAM', 'GradCAM', 'GradCAMPlusPlus', 'ScoreCAM', 'LayerCAM', 'GradCAMPackage'):
        assert CAM_GENERATORS.get(name) is not None, name
    assert isinstance(build(dict(type='LayerCAM'), CAM_GENERATORS), LayerCAM)
    assert GradCAM.needs_grad and LayerCAM.needs_grad and not ScoreCAM.needs_grad


def test_gradcam_on_the_cam_classifier_is_cam_over_hw(core_registered):
    model, img = tiny_model(), torch.randn(2, 3, 48, 40)
    a = features(model, img)
    hw = a.shape[2] * a.shape[3]
    expected = F.relu(F.conv2d(a, model.classifier.weight)) / hw
    assert torch.allclose(GradCAM()(model, img), expected, atol=1e-7)


def test_layercam_on_the_cam_classifier(core_registered):
    model, img = tiny_model(), torch.randn(2, 3, 48, 40)
    a = features(model, img)
    w = model.classifier.weight
    expected = F.relu(F.conv2d(a, F.relu(w))) / (a.shape[2] * a.shape[3])
    got = LayerCAM()(model, img)
    assert torch.allclose(got, expected, atol=1e-7)
    assert not torch.allclose(got, GradCAM()(model, img), atol=1e-6)   # w has negative entries


def test_gradcam_plusplus_on_the_cam_classifier(core_registered):
    model, img = tiny_model(), torch.randn(2, 3, 48, 40)
    a = features(model, img)
    hw = a.shape[2] * a.shape[3]
    g = model.classifier.weight.flatten(1)[None] / hw          # (1, C, K)
    s = a.sum(dim=(2, 3))[:, None]                              # (B, 1, K)
    alpha = g ** 2 / (2 * g ** 2 + s * g ** 3)
    weight = hw * alpha * F.relu(g)                             # (B, C, K)
    expected = F.relu(torch.einsum('bck,bkhw->bchw', weight, a))
    assert torch.allclose(GradCAMPlusPlus()(model, img), expected, rtol=1e-4, atol=1e-6)


def test_gradcam_and_layercam_with_a_spatially_varying_gradient():
    torch.manual_seed(1)
    v, a = torch.randn(3, 4), torch.randn(2, 4, 5, 6)
    model, hw = Quadratic(v), 30
    grad = 2 * v[None, :, :, None, None] * a[:, None] / hw     # (B, C, K, h, w)
    alpha = grad.mean(dim=(3, 4), keepdim=True)
    grad_cam = F.relu((alpha * a[:, None]).sum(2))
    layer_cam = F.relu((F.relu(grad) * a[:, None]).sum(2))
    assert torch.allclose(GradCAM()(model, a), grad_cam, atol=1e-6)
    assert torch.allclose(LayerCAM()(model, a), layer_cam, atol=1e-6)
    assert model.v.grad is None


def test_scorecam_by_hand_on_the_quadratic_model():
    torch.manual_seed(2)
    model, x = Quadratic(torch.randn(3, 4)), torch.randn(2, 4, 5, 6)
    with torch.no_grad():
        base = torch.sigmoid(model.logits(torch.zeros_like(x[:1])))
        masked = torch.stack([torch.sigmoid(model.logits(x * minmax(x[:, k])[:, None]))
                              for k in range(4)], dim=1)            # (B, K, C)
    expected = F.relu(torch.einsum('bkc,bkhw->bchw', masked - base[:, None], x))
    assert torch.allclose(ScoreCAM(mask_batch=3)(model, x), expected, atol=1e-6)
    top = x.mean(dim=(2, 3)).argmax(1)                               # top_k=1: best channel only
    w1 = (masked - base[:, None])[torch.arange(2), top]              # (B, C)
    one = F.relu(w1[:, :, None, None] * x[torch.arange(2), top][:, None])
    assert torch.allclose(ScoreCAM(top_k=1)(model, x), one, atol=1e-6)
    assert torch.allclose(ScoreCAM(top_k=4)(model, x), expected, atol=1e-6)


def test_scorecam_options(core_registered):
    model, img = tiny_model(), torch.randn(1, 3, 32, 32)
    soft = ScoreCAM(score='softmax')(model, img)
    assert soft.shape == (1, 3, 4, 4) and not torch.allclose(soft, ScoreCAM()(model, img))
    with pytest.raises(ValueError, match='sigmoid'):
        ScoreCAM(score='probit')


@pytest.mark.parametrize('method', GRADIENT + [ScoreCAM], ids=lambda m: m.__name__)
def test_class_ids_fast_path(core_registered, method):
    model, img = tiny_model(), torch.randn(2, 3, 32, 32)
    full = method()(model, img)
    part = method()(model, img, class_ids=[[2], [0, 2]])
    keep = torch.tensor([[0, 0, 1], [1, 0, 1]], dtype=torch.bool)[:, :, None, None]
    assert torch.allclose(part, full * keep, atol=1e-7)
    with pytest.raises(ValueError, match='2 images'):
        method()(model, img, class_ids=[[0]])


def test_one_backward_per_needed_class(core_registered, monkeypatch):
    calls = []
    real = torch.autograd.grad

    def counting(outputs, *args, **kwargs):
        calls.append(outputs.shape)
        return real(outputs, *args, **kwargs)

    monkeypatch.setattr(torch.autograd, 'grad', counting)
    model, img = tiny_model(), torch.randn(4, 3, 32, 32)
    GradCAM()(model, img, class_ids=[[2], [0, 2], [2], []])
    assert calls == [(4,), (4,)]                   # classes 0 and 2, whole batch each
    GradCAM()(model, img)
    assert len(calls) == 2 + 3


def test_no_gradient_reaches_the_parameters(core_registered):
    model, img = tiny_model(), torch.randn(2, 3, 32, 32)
    marker = torch.full_like(model.classifier.weight, 7.0)
    model.classifier.weight.grad = marker.clone()
    for method in GRADIENT:
        method()(model, img)
    assert torch.equal(model.classifier.weight.grad, marker)
    assert all(p.grad is None for n, p in model.named_parameters() if n != 'classifier.weight')


def test_target_layer_by_dotted_path(core_registered):
    model, img = tiny_model(), torch.randn(2, 3, 32, 32)
    assert torch.allclose(GradCAM(target_layer='backbone')(model, img), GradCAM()(model, img))
    assert GradCAM(target_layer='backbone.stages.1')(model, img).shape == (2, 3, 8, 8)
    with pytest.raises(AttributeError):
        GradCAM(target_layer='backbone.nope')(model, img)


def test_capture_keeps_the_activation_before_an_inplace_relu(core_registered):
    model, img = tiny_model(), torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        plain = model.logits(img)
        with capture_target(model, 'backbone.stem.1') as cap:     # BatchNorm, then ReLU(inplace)
            hooked = model.logits(img)
    assert cap.activation.min() < 0                               # recorded before the ReLU
    assert torch.allclose(plain, hooked)
    assert 'extract_feat' not in vars(model)                      # default patch removed


def test_target_that_runs_twice_or_is_missing():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 1)

        def forward(self, x):
            return self.conv(self.conv(x)).mean(dim=(2, 3))

    with pytest.raises(RuntimeError, match='2 times'):
        GradCAM(target_layer='conv')(Twice(), torch.randn(1, 2, 4, 4))
    with pytest.raises(AttributeError, match='extract_feat'):
        GradCAM()(Twice(), torch.randn(1, 2, 4, 4))


@pytest.mark.parametrize('method', GRADIENT, ids=lambda m: m.__name__)
def test_multiscale_flip_equals_a_per_scale_loop(core_registered, method):
    model, img = tiny_model(), torch.randn(2, 3, 40, 32)
    scales = (1.0, 0.5, 1.5)
    got = multiscale_cams(method(), model, img, scales=scales, flip=True)
    assert got.shape == (2, 3, 40, 32)
    assert torch.allclose(got, multiscale_cams_loop(method(), model, img, scales, True),
                          rtol=1e-4, atol=1e-7)
    if method is GradCAM:                         # sum over scales/flips of CAM_s / (h_s w_s)
        expected = torch.zeros_like(got)
        for s in scales:
            x = img if s == 1.0 else F.interpolate(img, size=(round(40 * s), round(32 * s)),
                                                   mode='bilinear', align_corners=False)
            for flip in (False, True):
                xi = x.flip(-1) if flip else x
                a = features(model, xi)
                m = F.relu(F.conv2d(a, model.classifier.weight)) / (a.shape[2] * a.shape[3])
                m = m.flip(-1) if flip else m
                expected += F.interpolate(m, size=(40, 32), mode='bilinear', align_corners=False)
        assert torch.allclose(got, expected, atol=1e-6)


def test_makecams_call_path_under_inference_mode(core_registered):
    model, img = tiny_model(), torch.randn(2, 3, 32, 32)
    generator = build(dict(type='GradCAM'), CAM_GENERATORS)
    with torch.inference_mode(not generator.needs_grad):           # what MakeCAMs does
        maps = multiscale_cams(generator, model, img, scales=(1.0, 0.5), flip=True)
    with torch.inference_mode():                                   # robust even when it is on
        frozen = img.clone()
        again = multiscale_cams(generator, model, frozen, scales=(1.0, 0.5), flip=True)
    assert maps.shape == (2, 3, 32, 32) and maps.max() > 0
    assert torch.allclose(maps, again)
    assert all(p.grad is None for p in model.parameters())


def test_package_adapter_says_how_to_install(core_registered, monkeypatch):
    from wsss_core.cams.pytorch_grad_cam_adapter import GradCAMPackage
    monkeypatch.setitem(sys.modules, 'pytorch_grad_cam', None)      # import fails
    with pytest.raises(ImportError, match=r'pip install .*grad-cam'):
        GradCAMPackage()


def _minmax(t):
    t = t - t.flatten(2).min(2).values[..., None, None]
    return t / (1e-7 + t.flatten(2).max(2).values[..., None, None])


@pytest.mark.skipif(not HAS_PACKAGE, reason='grad-cam (pytorch_grad_cam) not installed')
@pytest.mark.parametrize('name, ours', [('GradCAM', GradCAM), ('LayerCAM', LayerCAM)])
def test_package_adapter_agrees_with_ours_up_to_normalisation(core_registered, name, ours):
    from wsss_core.cams.pytorch_grad_cam_adapter import GradCAMPackage
    model, img = tiny_model(), torch.randn(2, 3, 40, 32)
    got = GradCAMPackage(method=name)(model, img, class_ids=[[0, 1], [1, 2]])
    # the package: ReLU map -> min-max -> OpenCV bilinear resize -> min-max again
    ref = _minmax(F.interpolate(_minmax(ours()(model, img)), size=(40, 32), mode='bilinear',
                                align_corners=False))
    keep = torch.tensor([[1, 1, 0], [0, 1, 1]], dtype=torch.bool)[:, :, None, None]
    assert got.shape == (2, 3, 40, 32)
    assert torch.allclose(got, ref * keep, atol=1e-4)
    assert all(p.grad is None for p in model.parameters()) and not model.training


@pytest.mark.skipif(not HAS_PACKAGE, reason='grad-cam (pytorch_grad_cam) not installed')
def test_package_adapter_rejects_unknown_methods(core_registered):
    from wsss_core.cams.pytorch_grad_cam_adapter import GradCAMPackage
    with pytest.raises(ValueError, match='NoSuchCAM'):
        GradCAMPackage(method='NoSuchCAM')
