"""The MoANA plugin's answer to ``wsss_conformance_examples()``: how the conformance suite
builds and exercises each component of :data:`~wsss_moana.plugin.COMPONENTS` (tiny configs,
generated CPU inputs, no weights)."""
from __future__ import annotations

import torch

from wsss_core.testing.conformance import ComponentExample
from wsss_core.testing.conformance import inputs as gen_inputs

#: the plugin tests' tiny backbone
TINY_BACKBONE = dict(type='SmallResNet', widths=(8, 8, 16, 16))
TINY_WITH_MOANA = dict(backbone=dict(TINY_BACKBONE), moana=dict(preset='wsol'))


def _features(gen):
    """A (2, 8, 6, 10) feature batch: two images, as MoANA's channel BatchNorm needs."""
    return (torch.randn(2, 8, 6, 10, generator=gen),)


def _images(hw):
    return lambda gen: (gen_inputs.image_batch(gen, 2, hw),)


def examples():
    return [
        ComponentExample('MoANABlock', dict(channels=8, preset='wsss'), kind='module',
                         inputs=_features),
        ComponentExample('WithMoANA', dict(TINY_WITH_MOANA), kind='module',
                         inputs=_images((32, 32))),
        ComponentExample('MoANAClassifier',
                         dict(num_classes=3, backbone=dict(TINY_WITH_MOANA, type='WithMoANA')),
                         kind='classifier'),
        # full-width networks (no width option): small inputs (Inception-v3 takes >= 75 px)
        ComponentExample('VGG16CAM', dict(conv6_channels=16), kind='module',
                         inputs=_images((16, 16))),
        ComponentExample('InceptionV3CAM', dict(conv6_channels=16), kind='module',
                         inputs=_images((75, 75))),
    ]
