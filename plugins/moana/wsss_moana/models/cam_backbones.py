"""VGG16 and InceptionV3 CAM backbones for WSOL, where MoANA is inserted before the classifier.

The released MoANA code has only ResNet-50; the paper's claim covers other backbones, so these
follow the wsolevaluation "CAM" variants (Choe et al., CVPR 2020;
``docs/methods/moana.md#3-where-the-block-goes``):

* ``VGG16CAM``: VGG16's 13 convolutions (torchvision indices ``features.0 .. features.28``,
  so torchvision weights load), max-pool 5 removed and, with ``large_feature_map``, max-pool 4
  as well (output stride 8: 28 x 28 at 224), then ``conv6`` 3x3 512 -> 1024 + ReLU.
* ``InceptionV3CAM``: torchvision Inception-v3 up to ``Mixed_6e`` (768 channels, output stride
  about 16), then ``conv6`` 3x3 768 -> 1024 + ReLU.  wsolevaluation also changes some
  strides of its Inception to get a larger map; that is not reproduced here.

Both end at the features the class-specific 1x1 classifier reads, so ``WithMoANA`` puts the
block right before it.  Nothing is downloaded: ``pretrained`` is a local torchvision file.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from wsss_core.models.weights import load_matching_weights
from wsss_core.registry import MODELS

#: torchvision VGG16 ``features`` layout: channels per conv, 'M' for a max-pool
VGG16_LAYOUT = (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M',
                512, 512, 512, 'M')


@MODELS.register_module()
class VGG16CAM(nn.Module):
    """VGG16 conv1_1..conv5_3 (+ conv6 1024) at output stride 8 or 16; see the module doc."""

    def __init__(self, large_feature_map: bool = True, pretrained: Optional[str] = None,
                 conv6_channels: int = 1024):
        super().__init__()
        pools = [i for i, v in enumerate(VGG16_LAYOUT) if v == 'M']
        dropped = {pools[4]} | ({pools[3]} if large_feature_map else set())
        layers, cin = [], 3
        for i, v in enumerate(VGG16_LAYOUT):
            if v == 'M':
                layers.append(nn.Identity() if i in dropped else nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
                cin = v
        self.features = nn.Sequential(*layers)   # torchvision indices: conv at 0, 2, 5, ...
        self.conv6 = nn.Conv2d(cin, conv6_channels, 3, padding=1)
        self.relu6 = nn.ReLU(inplace=True)
        self.out_channels = conv6_channels
        self.output_stride = 8 if large_feature_map else 16
        self.missing_keys = load_matching_weights(
            self, pretrained, 'VGG16CAM', 'torchvision names such as features.0.weight') \
            if pretrained else []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu6(self.conv6(self.features(x)))


@MODELS.register_module()
class InceptionV3CAM(nn.Module):
    """torchvision Inception-v3 stem .. ``Mixed_6e`` + conv6 (768 -> 1024, 3x3) + ReLU."""

    STAGES = ('Conv2d_1a_3x3', 'Conv2d_2a_3x3', 'Conv2d_2b_3x3', 'maxpool1', 'Conv2d_3b_1x1',
              'Conv2d_4a_3x3', 'maxpool2', 'Mixed_5b', 'Mixed_5c', 'Mixed_5d', 'Mixed_6a',
              'Mixed_6b', 'Mixed_6c', 'Mixed_6d', 'Mixed_6e')

    def __init__(self, pretrained: Optional[str] = None, conv6_channels: int = 1024):
        super().__init__()
        import torchvision
        net = torchvision.models.inception_v3(weights=None, aux_logits=False,
                                              init_weights=False)
        for name in self.STAGES:
            self.add_module(name, getattr(net, name))
        self.conv6 = nn.Conv2d(768, conv6_channels, 3, padding=1)
        self.relu6 = nn.ReLU(inplace=True)
        self.out_channels = conv6_channels
        self.output_stride = 16
        self.missing_keys = load_matching_weights(
            self, pretrained, 'InceptionV3CAM', 'torchvision names such as '
            'Conv2d_1a_3x3.conv.weight') if pretrained else []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.STAGES:
            x = getattr(self, name)(x)
        return self.relu6(self.conv6(x))
