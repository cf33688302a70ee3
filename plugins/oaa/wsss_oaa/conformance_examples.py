"""The OAA plugin's answer to ``wsss_conformance_examples()``: how the conformance suite
builds and exercises each component of :data:`~wsss_oaa.plugin.COMPONENTS` (tiny configs,
generated CPU inputs, no weights)."""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import torch

from wsss_core.testing.conformance import ComponentExample
from wsss_core.testing.conformance import inputs as gen_inputs

#: VGG16OAA with every width divided by 16 (4..32 channels): the plugin tests' tiny backbone
TINY_BACKBONE = dict(type='VGG16OAA', width_mult=1 / 16)
TINY_CLASSIFIER = dict(num_classes=3, backbone=dict(TINY_BACKBONE), head_channels=16)
#: image id of the generated samples (:func:`wsss_core.testing.conformance.inputs`)
SAMPLE_ID = 'conformance_0'


def _images(gen):
    return (gen_inputs.image_batch(gen, 2, (32, 32)),)


def _attention_batch(gen):
    """The classifier batch plus (B, C, 4, 4) attention targets in [0, 1], zero for the
    classes an image does not hold (as LoadAttentionTargets gives them)."""
    batch = gen_inputs.classifier_inputs(gen, 3)
    targets = torch.rand(2, 3, 4, 4, generator=gen)
    return dict(batch, attention=targets * batch['labels'][:, :, None, None])


@functools.lru_cache(maxsize=None)
def _attention_root() -> str:
    """A folder holding ``conformance_0.npz``: maps of classes 0 and 2 at 6 x 8."""
    from wsss_core.io import save_cam
    root = Path(tempfile.mkdtemp(prefix='wsss_oaa_conformance_'))
    maps = np.linspace(0, 1, 2 * 6 * 8, dtype=np.float32).reshape(2, 6, 8)
    save_cam(root / f'{SAMPLE_ID}.npz', maps, np.array([0, 2]))
    return str(root)


def examples():
    return [
        ComponentExample('VGG16OAA', dict(width_mult=1 / 16), kind='module', inputs=_images),
        ComponentExample('OAAClassifier', dict(TINY_CLASSIFIER), kind='classifier',
                         roles=('cam_model', 'step_maps')),
        ComponentExample('IntegralAttentionModel', dict(TINY_CLASSIFIER), kind='classifier',
                         inputs=_attention_batch),
        ComponentExample('OAAAccumulationHook', dict(start_epoch=1, filter='topk')),
        ComponentExample('LoadAttentionTargets', lambda: dict(root=_attention_root(),
                                                              num_classes=3)),
        ComponentExample('OAAProxyLabels', dict()),
        ComponentExample('ExportAttention', dict(name='attention', source='classify')),
        ComponentExample('TrainIntegralAttention',
                         dict(name='iam', targets='classify',
                              model=dict(backbone=dict(TINY_BACKBONE), head_channels=16))),
    ]
