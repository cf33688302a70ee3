"""CAM classifier and multi-scale/flip CAM inference against direct computations."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from wsss_core.cams import CAM, multiscale_cams, multiscale_cams_loop, normalize_cams
from wsss_core.models.cam_classifier import CAMClassifier


def tiny_model(core_registered=None):
    torch.manual_seed(0)
    model = CAMClassifier(backbone=dict(type='SmallResNet', widths=(8, 8, 16, 16)), num_classes=3)
    return model.eval()


def test_logits_are_the_spatial_mean_of_the_class_maps(core_registered):
    model = tiny_model()
    img = torch.randn(2, 3, 40, 40)
    assert torch.allclose(model.logits(img), model.cam_logits(img).mean(dim=(2, 3)), atol=1e-5)


def test_multiscale_flip_equals_direct_per_scale_computation(core_registered):
    model, img = tiny_model(), torch.randn(2, 3, 40, 36)
    scales = (1.0, 0.5, 1.5)
    got = multiscale_cams(CAM(), model, img, scales=scales, flip=True)
    weight = model.classifier.weight                      # (C, D, 1, 1)
    expected = torch.zeros_like(got)
    with torch.no_grad():
        for s in scales:
            size = (round(40 * s), round(36 * s))
            x = img if s == 1.0 else F.interpolate(img, size=size, mode='bilinear',
                                                   align_corners=False)
            for flip in (False, True):
                xi = x.flip(-1) if flip else x
                m = F.relu(F.conv2d(model.backbone(xi), weight))   # M_c = ReLU(sum_k w_ck f_k)
                m = m.flip(-1) if flip else m
                expected += F.interpolate(m, size=(40, 36), mode='bilinear', align_corners=False)
    assert got.shape == (2, 3, 40, 36)
    assert torch.allclose(got, expected, atol=1e-4)
    assert torch.allclose(got, multiscale_cams_loop(CAM(), model, img, scales, True), atol=1e-4)


def test_flip_changes_the_result_and_scales_add_up(core_registered):
    model, img = tiny_model(), torch.randn(1, 3, 32, 32)
    single = multiscale_cams(CAM(), model, img, scales=(1.0,), flip=False)
    both = multiscale_cams(CAM(), model, img, scales=(1.0,), flip=True)
    mirrored = multiscale_cams(CAM(), model, img.flip(-1), scales=(1.0,), flip=False).flip(-1)
    assert torch.allclose(both, single + mirrored, atol=1e-5)


def test_normalize_keeps_requested_classes_with_unit_peak():
    cams = torch.rand(4, 6, 5) * torch.tensor([1.0, 3.0, 0.5, 2.0]).view(4, 1, 1)
    out = normalize_cams(cams, [3, 1])
    assert out.shape == (2, 6, 5)
    assert torch.allclose(out[0], cams[3] / (cams[3].max() + 1e-5))
    assert torch.allclose(out.flatten(1).max(1).values, torch.ones(2), atol=1e-4)
    assert normalize_cams(torch.zeros(2, 3, 3), [0]).abs().max() == 0   # no division by zero


def test_channels_last_model_gives_the_same_maps(core_registered):
    torch.manual_seed(0)
    a = CAMClassifier(backbone=dict(type='SmallResNet', widths=(8, 8, 16, 16)), num_classes=3)
    b = CAMClassifier(backbone=dict(type='SmallResNet', widths=(8, 8, 16, 16)), num_classes=3,
                      channels_last=True)
    b.load_state_dict(a.state_dict())
    img = torch.randint(0, 255, (2, 3, 24, 24), dtype=torch.uint8)
    xa, xb = a.data_preprocessor.normalize(img), b.data_preprocessor.normalize(img)
    assert xb.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(a.eval().cam_logits(xa), b.eval().cam_logits(xb), atol=1e-5)


def test_cam_without_relu_keeps_the_raw_maps():
    from wsss_core.cams.cam import CAM

    class Fixed:
        def cam_logits(self, img):
            return torch.tensor([[[[-1.0, 2.0]]]])

    assert CAM()(Fixed(), None).tolist() == [[[[0.0, 2.0]]]]
    assert CAM(relu=False)(Fixed(), None).tolist() == [[[[-1.0, 2.0]]]]
