"""OAA's classification head: the class attention maps come out of it
(``docs/methods/oaa.md#22-classifier-architecture``).

    A = conv1x1( ReLU(conv3x3( ReLU(conv3x3( ReLU(conv3x3(f)) )) )) )   (B, C, h, w)
    logits = GAP(A)

Three 3x3 convs (``channels`` wide, 512 in the reference) each followed by ReLU, then a 1x1
conv with bias to the C classes.  Weights start from N(0, 0.01), biases at 0, as in the
reference.  The map is taken *before* global average pooling, so it is exactly the class
attention whose spatial mean is the logit.
"""
from __future__ import annotations

import torch.nn as nn


class AttentionHead(nn.Sequential):
    """``num_convs`` x (3x3 conv + ReLU) then a 1x1 conv to ``num_classes`` (with bias)."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = 512,
                 num_convs: int = 3, init_std: float = 0.01):
        layers, cin = [], in_channels
        for _ in range(num_convs):
            layers += [nn.Conv2d(cin, channels, 3, padding=1), nn.ReLU(inplace=True)]
            cin = channels
        layers.append(nn.Conv2d(cin, num_classes, 1))
        super().__init__(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, init_std)
                nn.init.zeros_(m.bias)
