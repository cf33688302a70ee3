"""VGG16 at output stride 8, as OAA's classifier uses it
(``docs/methods/oaa.md#22-classifier-architecture``).

The 13 conv layers of VGG16 (configuration D) with three changes:

* pool4 becomes a 3x3 max-pool with stride 1 and padding 1 (size kept),
* pool5 is removed,
* the three conv5 layers are dilated by 2 (padding 2),

so the output has 512 channels at 1/8 of the input.  Layers keep torchvision's index layout
(``features.<i>.weight``; the replaced pool has no parameters), so torchvision's and timm's
ImageNet ``vgg16`` state dicts load directly; their classifier weights are ignored.
``width_mult`` scales every width for tiny test variants.
"""
from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn as nn

from wsss_core.io import DataFileError
from wsss_core.models.timm_backbone import load_state_dict_file
from wsss_core.registry import MODELS

#: VGG16 'D' with OAA's changes: 'M' = max-pool 2x2/2, 'N' = max-pool 3x3/1 (pad 1),
#: 'D512' = 3x3 conv with dilation 2.
OAA_VGG16_LAYOUT = (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'N',
                    'D512', 'D512', 'D512')


def _layers(width_mult: float) -> List[nn.Module]:
    layers: List[nn.Module] = []
    cin = 3
    for item in OAA_VGG16_LAYOUT:
        if item == 'M':
            layers.append(nn.MaxPool2d(2, 2))
        elif item == 'N':
            layers.append(nn.MaxPool2d(3, 1, 1))
        else:
            dilation = 2 if isinstance(item, str) else 1
            width = int(item[1:]) if isinstance(item, str) else item
            cout = max(1, int(round(width * width_mult)))
            layers += [nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation),
                       nn.ReLU(inplace=True)]
            cin = cout
    return layers


def he_init(conv: nn.Conv2d) -> None:
    """torchvision's VGG initialisation (He et al. 2015, the backward condition, eq. 14):
    ``W ~ N(0, 2 / (k^2 * C_out))``, ``b = 0``.  PyTorch's default for a bare ``Conv2d``
    (``std = 1 / sqrt(3 * fan_in)``) shrinks the signal at every conv + ReLU: after the 13
    convs at 1/4 width a unit-variance input leaves an output std of about 0.01 (0.2 with
    this init), and a VGG16 trained from scratch that way (the ShapeCorpus stand-in) stayed
    at the chance loss for its first 500 steps.
    """
    nn.init.kaiming_normal_(conv.weight, mode='fan_out', nonlinearity='relu')
    nn.init.zeros_(conv.bias)


@MODELS.register_module()
class VGG16OAA(nn.Module):
    """VGG16 conv layers, pool4 stride 1, no pool5, conv5 dilated 2: stride 8, 512 channels.

    Args:
        pretrained: a local ImageNet ``vgg16`` state dict (torchvision ``vgg16-397923af.pth``
            or timm ``vgg16``); every one of the 13 convs must be found in it.  Nothing is
            downloaded; a missing file is an error naming it.
        width_mult: multiplies every width (1.0 = VGG16; e.g. 1/16 for tests).
    """

    output_stride = 8

    def __init__(self, pretrained: Optional[str] = None, width_mult: float = 1.0):
        super().__init__()
        self.features = nn.Sequential(*_layers(width_mult))
        convs = [m for m in self.features if isinstance(m, nn.Conv2d)]
        self.out_channels = convs[-1].out_channels
        for conv in convs:
            he_init(conv)
        if pretrained:
            self.load_imagenet(pretrained)

    def load_imagenet(self, path) -> None:
        """Load ``features.*`` from a local VGG16 state dict (strict on the conv weights)."""
        state = load_state_dict_file(path, 'pretrained')
        ours = self.state_dict()
        found = {k: v for k, v in state.items() if k in ours}
        missing = sorted(set(ours) - set(found))
        if missing:
            raise DataFileError(f'{path}: not a VGG16 state dict in torchvision/timm names '
                                f'(missing {missing[:4]}{" ..." if len(missing) > 4 else ""})')
        wrong = [k for k, v in found.items() if v.shape != ours[k].shape]
        if wrong:
            raise DataFileError(f'{path}: shape mismatch for {wrong[:4]} (width_mult must be 1)')
        self.load_state_dict(found)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
