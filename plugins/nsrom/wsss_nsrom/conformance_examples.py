"""The NSROM plugin's answer to ``wsss_conformance_examples()``: how the conformance suite
builds and exercises each component of :data:`~wsss_nsrom.plugin.COMPONENTS` (tiny configs,
generated CPU inputs, no weights)."""
from __future__ import annotations

import numpy as np
import torch

from wsss_core.io import IGNORE_INDEX
from wsss_core.testing.conformance import ComponentExample
from wsss_core.testing.conformance import inputs as gen_inputs

#: VGG16OAA with every width divided by 16 (4..32 channels): the plugin tests' tiny backbone
TINY_BACKBONE = dict(type='VGG16OAA', width_mult=1 / 16)
#: a 16-channel GloRe head with 4 nodes
TINY_HEAD = dict(head_channels=16, num_nodes=4)


def _attention_batch(gen):
    """The classifier batch plus (B, C, 4, 4) accumulated-attention targets in [0, 1], zero
    for the classes an image does not hold (what the OA-CAM model trains on)."""
    batch = gen_inputs.classifier_inputs(gen, 3)
    targets = torch.rand(2, 3, 4, 4, generator=gen)
    return dict(batch, attention=targets * batch['labels'][:, :, None, None])


def _pom_sample(gen):
    """A refiner sample after background extraction: a label map (background, the image's
    classes, ignore) and the plain CAMs under the extra-CAM key ``plain_cams``."""
    sample = gen_inputs.refiner_sample(gen, 3)
    values = np.concatenate([[0], sample['class_ids'] + 1, [IGNORE_INDEX]]).astype(np.uint8)
    pick = torch.randint(len(values), sample['saliency'].shape, generator=gen).numpy()
    plain = torch.rand(sample['cams'].shape, generator=gen).numpy()
    return dict(sample, label=values[pick], plain_cams=plain,
                plain_cams_class_ids=sample['class_ids'].copy())


def examples():
    return [
        ComponentExample('NSROMClassifier',
                         dict(num_classes=3, backbone=dict(TINY_BACKBONE), **TINY_HEAD),
                         kind='classifier', roles=('cam_model', 'step_maps')),
        ComponentExample('OACAMModel',
                         dict(num_classes=3, backbone=dict(TINY_BACKBONE), **TINY_HEAD),
                         kind='classifier', inputs=_attention_batch),
        ComponentExample('PotentialObjectMining', dict(), inputs=_pom_sample),
        ComponentExample('MaskNonSalientRegions',
                         dict(name='nsrm', predictions='test', labels='labels')),
    ]
