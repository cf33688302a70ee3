"""The comparison maps (attention rollout, plain CAM of the class head) and the offline
online-label refiner."""
from __future__ import annotations

import numpy as np
import torch

from wsss_getam.testing import registered  # noqa: F401 (fixture)
from wsss_getam.models.vit_backbone import TINY_BACKBONES
from wsss_getam.rollout import AttentionRolloutCAM, attention_rollout


def tiny_net():
    from wsss_core.registry import MODELS, build
    torch.manual_seed(0)
    return build(dict(type='GETAMNet', backbone=dict(TINY_BACKBONES['vit']), features=16,
                      num_classes=3), MODELS).eval()


def test_rollout_is_the_product_of_residual_normalised_attentions():
    a0 = torch.tensor([[0.5, 0.5], [0.2, 0.8]])
    a1 = torch.tensor([[1.0, 0.0], [0.4, 0.6]])
    heads = [torch.stack([a, a])[None] for a in (a0, a1)]        # (1, 2 heads, 2, 2)
    # (A + I) / 2 is already row-stochastic for row-stochastic A
    r0 = (a0 + torch.eye(2)) / 2
    r1 = (a1 + torch.eye(2)) / 2
    torch.testing.assert_close(attention_rollout(heads)[0], r1 @ r0)
    torch.testing.assert_close(attention_rollout(heads, start_layer=1)[0], r1)


def test_rollout_cam_is_class_agnostic_and_cam_logits_give_the_logits(registered):
    net = tiny_net()
    img = torch.randn(2, 3, 64, 96)
    maps = AttentionRolloutCAM()(net, img, [[0, 2], [1]])
    assert maps.shape == (2, 3, 64, 96)
    torch.testing.assert_close(maps[0, 0], maps[0, 2])
    assert maps[0, 1].abs().sum() == 0 and maps[1, 0].abs().sum() == 0
    assert maps[1, 1].min() >= 0 and maps[1, 1].max() > 0
    with torch.no_grad():
        cams = net.cam_logits(img)
        torch.testing.assert_close(cams.mean(dim=(2, 3)) + net.cls_head.bias,
                                   net.cls_logits(img), rtol=1e-4, atol=1e-5)
    assert cams.shape == (2, 3, 2, 3)                   # stride 32


def test_online_label_refiner_maps_channels_to_class_ids():
    from wsss_getam.online_refiner import GETAMOnlineLabels
    h, w = 12, 12
    cams = np.zeros((2, h, w), np.float32)
    cams[0, :, :6] = 1.0                    # first present class (id 1) on the left
    cams[1, :, 6:] = 1.0                    # second present class (id 4) on the right
    saliency = np.zeros((h, w), np.uint8)
    saliency[:, 3:] = 200                   # salient except the three leftmost columns
    out = GETAMOnlineLabels(opening=0)(dict(img_id='x', cams=cams, class_ids=np.array([1, 4]),
                                           saliency=saliency))['label']
    assert (out[:, :3] == 0).all()          # background only where not salient
    assert (out[:, 3:6] == 2).all() and (out[:, 6:] == 5).all()
