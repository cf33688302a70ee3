"""DeepLab v3+ cannot train on a batch of one; TrainSegmentor says so when it is built."""
from __future__ import annotations

import pytest
import torch

from wsss_core.pipeline.stage import StageError
from wsss_deeplab.testing import registered  # noqa: F401 (fixture)

V3PLUS = dict(type='DeepLabV3Plus', num_classes=3, aspp_channels=8, decoder_channels=8,
              low_level_channels=4,
              backbone=dict(type='DeepLabResNet', depth='tiny', output_stride=16))


def test_v3plus_image_pooling_batchnorm_needs_two_images(registered):
    from wsss_core.registry import MODELS, build
    model = build(dict(V3PLUS), MODELS).train()
    with pytest.raises(ValueError, match='more than 1 value per channel'):
        model(torch.randn(1, 3, 33, 33), mode='tensor')
    model(torch.randn(2, 3, 33, 33), mode='tensor')


def test_train_segmentor_refuses_batch_one_for_v3plus(registered):
    from wsss_core.pipeline.train_segmentor import TrainSegmentor
    with pytest.raises(StageError) as err:
        TrainSegmentor('deeplab', model=dict(V3PLUS), batch_size=1)
    message = str(err.value)
    assert message.startswith('[deeplab] DeepLabV3Plus cannot train on batches of 1')
    assert 'image-pooling' in message and 'set batch_size=2' in message
    TrainSegmentor('deeplab', model=dict(V3PLUS), batch_size=2)
    TrainSegmentor('deeplab', model=dict(type='DeepLabV2', num_classes=3), batch_size=1)
