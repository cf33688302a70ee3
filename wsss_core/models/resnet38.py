"""ResNet-38 ("resnet38d"): the wide pre-activation ResNet A1 used by PSA, IRN-era CAM papers
and EDAM (Wu et al., "Wider or Deeper: Revisiting the ResNet Model for Visual Recognition",
Pattern Recognition 2019, model A1), dilated to output stride 8.

Pre-activation residual blocks, every conv without bias.  For an input ``x`` of a block:

    t   = ReLU(BN_2a(x))                                  (the block's pre-activation)
    out = shortcut + branch(t),   shortcut = x            if the shape is kept,
                                  shortcut = W_1 * t      (1x1 conv, block stride) otherwise

basic block:      branch(t) = conv3x3_2b1( ReLU(BN_2b1( conv3x3_2a(t; stride, d1) )); d2 )
bottleneck block: branch(t) = conv1x1_2b2( Drop(ReLU(BN_2b2( conv3x3_2b1(
                                  Drop(ReLU(BN_2b1( conv1x1_2a(t) ))); d) ))) )
                  (1x1 -> out/4, dilated 3x3 -> out/2, 1x1 -> out; the shortcut is always
                  the 1x1 conv of ``t``)

and the network output is ``ReLU(BN_7(b7(...)))`` (``final_relu=False``: ``BN_7(...)`` only,
EDAM's variant, which can be negative).  Widths at ``width_mult=1``:

=============  ==========  ============================  ======  ===================  ========
block          type        in -> mid -> out              stride  dilation (1st, 2nd)  dropout
=============  ==========  ============================  ======  ===================  ========
conv1a         conv 3x3    3 -> 64                       1       1
b2             basic       64 -> 128 -> 128              2       1, 1
b2_1, b2_2     basic       128 -> 128 -> 128             1       1, 1
b3             basic       128 -> 256 -> 256             2       1, 1
b3_1, b3_2     basic       256 -> 256 -> 256             1       1, 1
b4             basic       256 -> 512 -> 512             2       1, 1
b4_1 .. b4_5   basic       512 -> 512 -> 512             1       1, 1
b5             basic       512 -> 512 -> 1024            1       1, 2
b5_1, b5_2     basic       1024 -> 512 -> 1024           1       2, 2
b6             bottleneck  1024 -> (512, 1024) -> 2048   1       4 on the 3x3         0.3 (x2)
b7             bottleneck  2048 -> (1024, 2048) -> 4096  1       4 on the 3x3         0.5 (x2)
bn7            BN(4096)    + ReLU unless final_relu=False
=============  ==========  ============================  ======  ===================  ========

Output stride 8 (a 368 crop gives 46 x 46), 4096 channels; about 105.1 M parameters
(105,070,912 with the BatchNorm affine terms, 105,023,168 in the convs).

Parameter names (psa's ``resnet38d`` layout, so psa-converted ImageNet weights and psa / EDAM
``resnet38_cls`` checkpoints load as they are):

- ``conv1a.weight``; ``bn7.{weight,bias,running_mean,running_var}``;
- basic block ``bX``: ``bX.bn_branch2a`` (BN of the input, the pre-activation),
  ``bX.conv_branch2a`` (first 3x3), ``bX.bn_branch2b1``, ``bX.conv_branch2b1`` (second 3x3),
  ``bX.conv_branch1`` (1x1 shortcut, only when the shape changes: b2, b3, b4, b5);
- bottleneck ``b6`` / ``b7``: ``bn_branch2a``, ``conv_branch2a`` (1x1), ``bn_branch2b1``,
  ``conv_branch2b1`` (dilated 3x3), ``bn_branch2b2``, ``conv_branch2b2`` (1x1),
  ``conv_branch1`` (1x1 shortcut); the dropouts hold no weights.

Freezing (``docs/methods/edam.md#3-backbone-resnet-38``, as psa does it): the conv weights
of ``frozen_stages`` get ``requires_grad=False``; with ``norm_eval`` every BatchNorm stays in
eval mode (running statistics are used and never updated, also after ``model.train()``) and
its affine parameters get ``requires_grad=False``.  The BatchNorms stay ``nn.BatchNorm2d``
(not the deeplab plugin's ``FrozenBatchNorm2d`` buffers) so that ``norm_eval=False`` can
train them and the state dict keeps BatchNorm's layout.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import MODELS
from .weights import load_matching_weights

#: (name, kind, in, mid, out, stride, dilation 1st, dilation 2nd, dropout) at width_mult=1;
#: for a bottleneck ``mid`` is the width of the dilated 3x3 (out/2), its 1x1 gives out/4.
BLOCKS = (
    ('b2', 'basic', 64, 128, 128, 2, 1, 1, 0.0),
    ('b2_1', 'basic', 128, 128, 128, 1, 1, 1, 0.0),
    ('b2_2', 'basic', 128, 128, 128, 1, 1, 1, 0.0),
    ('b3', 'basic', 128, 256, 256, 2, 1, 1, 0.0),
    ('b3_1', 'basic', 256, 256, 256, 1, 1, 1, 0.0),
    ('b3_2', 'basic', 256, 256, 256, 1, 1, 1, 0.0),
    ('b4', 'basic', 256, 512, 512, 2, 1, 1, 0.0),
    *((f'b4_{i}', 'basic', 512, 512, 512, 1, 1, 1, 0.0) for i in range(1, 6)),
    ('b5', 'basic', 512, 512, 1024, 1, 1, 2, 0.0),
    ('b5_1', 'basic', 1024, 512, 1024, 1, 2, 2, 0.0),
    ('b5_2', 'basic', 1024, 512, 1024, 1, 2, 2, 0.0),
    ('b6', 'bottleneck', 1024, 1024, 2048, 1, 4, 4, 0.3),
    ('b7', 'bottleneck', 2048, 2048, 4096, 1, 4, 4, 0.5),
)
STEM_WIDTH = 64
OUT_WIDTH = 4096
DEFAULT_FROZEN = ('conv1a', 'b2', 'b2_1', 'b2_2')


def _conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False)


class PreActBasicBlock(nn.Module):
    """``out = shortcut + conv_branch2b1(ReLU(bn_branch2b1(conv_branch2a(t))))``,
    ``t = ReLU(bn_branch2a(x))``; shortcut ``x`` or ``conv_branch1(t)``."""

    def __init__(self, cin: int, mid: int, cout: int, stride: int = 1,
                 first_dilation: int = 1, dilation: int = 1):
        super().__init__()
        self.bn_branch2a = nn.BatchNorm2d(cin)
        self.conv_branch2a = _conv3x3(cin, mid, stride, first_dilation)
        self.bn_branch2b1 = nn.BatchNorm2d(mid)
        self.conv_branch2b1 = _conv3x3(mid, cout, 1, dilation)
        self.same_shape = cin == cout and stride == 1
        if not self.same_shape:
            self.conv_branch1 = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = F.relu(self.bn_branch2a(x))
        shortcut = x if self.same_shape else self.conv_branch1(t)
        branch = F.relu(self.bn_branch2b1(self.conv_branch2a(t)))
        return shortcut + self.conv_branch2b1(branch)


class PreActBottleneck(nn.Module):
    """``t = ReLU(bn_branch2a(x))``; ``out = conv_branch1(t) + branch(t)`` with the branch
    1x1 (out/4) -> BN -> ReLU -> Dropout2d -> dilated 3x3 (out/2) -> BN -> ReLU -> Dropout2d
    -> 1x1 (out)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1,
                 dropout: float = 0.0):
        super().__init__()
        quarter, half = cout // 4, cout // 2
        self.bn_branch2a = nn.BatchNorm2d(cin)
        self.conv_branch2a = nn.Conv2d(cin, quarter, 1, stride, bias=False)
        self.bn_branch2b1 = nn.BatchNorm2d(quarter)
        self.dropout_2b1 = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_branch2b1 = _conv3x3(quarter, half, 1, dilation)
        self.bn_branch2b2 = nn.BatchNorm2d(half)
        self.dropout_2b2 = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_branch2b2 = nn.Conv2d(half, cout, 1, bias=False)
        self.conv_branch1 = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = F.relu(self.bn_branch2a(x))
        shortcut = self.conv_branch1(t)
        b = self.dropout_2b1(F.relu(self.bn_branch2b1(self.conv_branch2a(t))))
        b = self.dropout_2b2(F.relu(self.bn_branch2b2(self.conv_branch2b1(b))))
        return shortcut + self.conv_branch2b2(b)


def _scaled(width: int, width_mult: float) -> int:
    value = width * width_mult
    if value < 1 or abs(value - round(value)) > 1e-6:
        raise ValueError(f'width_mult={width_mult} gives a non-integer width {value:g} for '
                         f'{width} channels: use a power of two with 64 * width_mult >= 1 '
                         '(e.g. 1/16)')
    return int(round(value))


@MODELS.register_module()
class ResNet38(nn.Module):
    """ResNet-38 (psa ``resnet38d``), output stride 8; see the module docstring.

    Args:
        pretrained: local weight file (psa/EDAM names, optionally under ``module.`` or
            ``backbone.``); keys of other modules (``fc8``, heads) are ignored.
        final_relu: apply ReLU after ``bn7`` (psa); ``False`` is EDAM's variant.
        frozen_stages: modules whose conv weights get ``requires_grad=False``.
        norm_eval: keep every BatchNorm in eval mode with frozen affine parameters.
        width_mult: scale every width (e.g. 1/16 for tests); 64 * width_mult must be an
            integer >= 1 so that all widths stay integers.
        dropout: keep the Dropout2d layers of b6 (0.3) and b7 (0.5).
        in_channels: input channels (3).
    """

    def __init__(self, pretrained: Optional[str] = None, final_relu: bool = True,
                 frozen_stages: Sequence[str] = DEFAULT_FROZEN, norm_eval: bool = True,
                 width_mult: float = 1.0, dropout: bool = True, in_channels: int = 3):
        super().__init__()
        w = lambda c: _scaled(c, width_mult)  # noqa: E731
        self.conv1a = nn.Conv2d(in_channels, w(STEM_WIDTH), 3, padding=1, bias=False)
        self.block_names = []
        for name, kind, cin, mid, cout, stride, d1, d2, drop in BLOCKS:
            if kind == 'basic':
                block = PreActBasicBlock(w(cin), w(mid), w(cout), stride, d1, d2)
            else:
                block = PreActBottleneck(w(cin), w(cout), stride, d2, drop if dropout else 0.0)
            self.add_module(name, block)
            self.block_names.append(name)
        self.bn7 = nn.BatchNorm2d(w(OUT_WIDTH))
        self.final_relu = bool(final_relu)
        self.norm_eval = bool(norm_eval)
        self.out_channels = w(OUT_WIDTH)
        self.output_stride = 8
        self.missing_keys: list = []
        if pretrained:
            self.missing_keys = self.load_pretrained(pretrained)
        self.frozen_stages = tuple(frozen_stages or ())
        self._freeze_stages()
        if self.norm_eval:
            for bn in self._norms():
                for p in bn.parameters():
                    p.requires_grad_(False)
        self.train(self.training)

    # -- freezing ---------------------------------------------------------------------------
    def _norms(self):
        return [m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def _freeze_stages(self) -> None:
        known = ['conv1a', *self.block_names]
        for name in self.frozen_stages:
            if name not in known:
                raise ValueError(f'frozen_stages: unknown stage {name!r} (one of {known})')
            for m in getattr(self, name).modules():
                if isinstance(m, nn.Conv2d):
                    m.weight.requires_grad_(False)

    def train(self, mode: bool = True) -> 'ResNet38':
        """``nn.Module.train`` that leaves every BatchNorm in eval mode when ``norm_eval``."""
        super().train(mode)
        if self.norm_eval:
            for bn in self._norms():
                bn.eval()
        return self

    # -- weights ----------------------------------------------------------------------------
    def load_pretrained(self, path) -> list:
        """Load psa-named weights from ``path``; returns the backbone keys the file lacks.

        Raises :class:`DataFileError` (naming the file) when it is missing, shares no key
        with the backbone, or holds a tensor of the wrong shape (width_mult?).
        """
        return load_matching_weights(self, path, 'ResNet38',
                                     'psa names such as conv1a.weight, b2.bn_branch2a.weight')

    # -- forward ----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1a(x)
        for name in self.block_names:
            x = getattr(self, name)(x)
        x = self.bn7(x)
        return F.relu(x) if self.final_relu else x

