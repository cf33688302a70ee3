"""The DeepLab plugin's answer to ``wsss_conformance_examples()``: how the conformance suite
builds and exercises each component of :data:`~wsss_deeplab.plugin.COMPONENTS` (tiny
configs, generated CPU inputs, no weights)."""
from __future__ import annotations

import torch

from wsss_core.testing.conformance import ComponentExample
from wsss_core.testing.conformance import inputs as gen_inputs

#: DeepLabResNet with one block per stage and base width 4 (the plugin tests' tiny backbone)
TINY_BACKBONE = dict(type='DeepLabResNet', depth='tiny')
#: classes of the segmentors' outputs, background included
SEG_CLASSES = 4


def _images(gen):
    return (gen_inputs.image_batch(gen, 2, (32, 32)),)


def _uint8_batch(gen):
    """What a data preprocessor gets: ``dict(data=dict(img=uint8 (B, 3, H, W)))``."""
    return dict(data=dict(img=torch.randint(0, 256, (2, 3, 24, 32), generator=gen,
                                            dtype=torch.uint8)))


def _segmentation_batch(gen):
    """A normalised image batch and a pseudo label map (0..K-1, a 255 ignore band)."""
    img = gen_inputs.image_batch(gen, 2, (33, 33))
    label = torch.randint(0, SEG_CLASSES, (2, 33, 33), generator=gen)
    label[:, :3] = 255
    return dict(img=img, pseudo_seg=label)


def _train_loss(model, batch):
    """What training calls: ``mode='loss'``, a dict of per-output losses."""
    return model(**batch, mode='loss')


def _model_examples():
    return [
        ComponentExample('DeepLabResNet', dict(depth='tiny'), kind='module', inputs=_images),
        ComponentExample('DeepLabV2', dict(num_classes=SEG_CLASSES, backbone=dict(TINY_BACKBONE),
                                           msc_scales=(0.5, 0.75)),
                         kind='module', inputs=_segmentation_batch, built_with=_train_loss,
                         roles=('segmenter',)),
        ComponentExample('DeepLabV3Plus',
                         dict(num_classes=SEG_CLASSES, backbone=dict(TINY_BACKBONE),
                              aspp_channels=8, low_level_channels=4, decoder_channels=8),
                         kind='module', inputs=_segmentation_batch, built_with=_train_loss),
        ComponentExample('CaffeNormalize', dict(), kind='module', inputs=_uint8_batch),
    ]


def examples():
    return _model_examples()
