"""MSC: pixel-wise max fusion of the scaled passes, against hand computations."""
from __future__ import annotations

import torch

from wsss_core.models.rescale import rescale_input
from wsss_deeplab.models.msc import MSC, max_fuse, msc_forward


def size_coded(x: torch.Tensor) -> torch.Tensor:
    """A fake network: class 0 scores the input width, class 1 minus it, at every pixel."""
    b, _, h, w = x.shape
    out = torch.empty(b, 2, h, w)
    out[:, 0] = w
    out[:, 1] = -w
    return out


def test_max_fusion_of_constant_maps_per_class():
    x = torch.zeros(1, 3, 8, 8)
    outs = msc_forward(size_coded, x, (0.5, 0.75), training=True)
    assert [o.shape[-1] for o in outs] == [8, 4, 6, 8]
    fused = outs[-1]
    assert torch.all(fused[:, 0] == 8)     # max(8, 4, 6)
    assert torch.all(fused[:, 1] == -4)    # max(-8, -4, -6)
    assert torch.equal(msc_forward(size_coded, x, (0.5, 0.75), training=False), fused)


def test_max_fusion_with_bilinear_upsampling_by_hand():
    # a row [0, 4, 8, 0]: halved (align_corners=False, exact 2x) -> [2, 4];
    # back to 4 pixels -> [2, 2.5, 3.5, 4]; max with the original -> [2, 4, 8, 4]
    row = torch.tensor([0.0, 4.0, 8.0, 0.0])
    x = row.view(1, 1, 1, 4).expand(1, 1, 4, 4).contiguous()
    half = rescale_input(x, 0.5)
    torch.testing.assert_close(half[0, 0, 0], torch.tensor([2.0, 4.0]))
    fused = max_fuse(x, [half])
    expected = torch.tensor([2.0, 4.0, 8.0, 4.0]).expand(4, 4)
    torch.testing.assert_close(fused[0, 0], expected)


def test_msc_module_returns_four_maps_in_training_and_one_in_eval():
    net = MSC(torch.nn.Conv2d(3, 2, 1), scales=(0.5, 0.75))
    x = torch.randn(2, 3, 16, 16)
    outs = net.train()(x)
    assert len(outs) == 4 and outs[0].shape == outs[3].shape == (2, 2, 16, 16)
    assert outs[1].shape[-1] == 8 and outs[2].shape[-1] == 12
    single = net.eval()(x)
    torch.testing.assert_close(single, outs[3])
    assert torch.all(single >= outs[0])


def test_rescale_sizes_floor_like_the_reference():
    x = torch.zeros(1, 3, 321, 321)
    assert rescale_input(x, 0.5).shape[-2:] == (160, 160)
    assert rescale_input(x, 0.75).shape[-2:] == (240, 240)
