"""The GETAM plugin's answer to ``wsss_conformance_examples()``: how the conformance suite
builds and exercises each component of :data:`~wsss_getam.plugin.COMPONENTS` (a tiny random
ViT, generated CPU inputs, no weights)."""
from __future__ import annotations

import torch

from wsss_core.testing.conformance import ComponentExample
from wsss_core.testing.conformance import inputs as gen_inputs

from .models.vit_backbone import TINY_BACKBONES

#: foreground classes C (the segmentation outputs have C + 1)
NUM_CLASSES = 3
#: GETAMNet on the 4-block, 32-wide random ViT with a 16-wide decoder (the plugin tests')
TINY_GETAM_NET = dict(type='GETAMNet', backbone=dict(TINY_BACKBONES['vit']), features=16,
                      se_reduction=4, num_classes=NUM_CLASSES, test_sizes=(64,),
                      joint=dict(start_layer=2, pamr=dict(num_iter=2, dilations=(1, 2))))
#: the GETAM map sums the last two of the tiny ViT's four blocks
START_LAYER = 2


def _tiny_net():
    from wsss_core.registry import MODELS, build
    return build(dict(TINY_GETAM_NET), MODELS)


def _images(gen):
    return (gen_inputs.image_batch(gen, 2, (32, 64)),)


def _classifier_batch(gen):
    """Images whose sides are multiples of 32 (GETAMNet's), image-level labels, and the
    saliency and valid-pixel maps the joint phase reads."""
    batch = gen_inputs.classifier_inputs(gen, NUM_CLASSES, hw=(32, 64))
    saliency = torch.zeros(2, 32, 64, dtype=torch.long)
    saliency[:, 8:24, 16:48] = 255
    valid = torch.ones(2, 32, 64, dtype=torch.long)
    valid[:, :, -4:] = 0
    return dict(batch, saliency=saliency, valid=valid)


def _joint_phase_losses(model, batch):
    """The losses of the joint phase (classification + segmentation + saliency + dense CRF):
    the phase ``GETAMScheduleHook`` switches to half-way through training."""
    model.phase = 'joint'
    return model(**batch, mode='loss')


def _cam_inputs(gen):
    """A tiny GETAMNet, images of 32 x 64 and the classes of each image."""
    return dict(gen_inputs.cam_generator_inputs(gen, NUM_CLASSES, hw=(32, 64)),
                model=_tiny_net())


def _pseudo_label(gen, hw=(32, 48)):
    """(2, H, W) pseudo labels: background, classes 1..C and an ignore (255) band."""
    label = torch.randint(0, NUM_CLASSES + 1, (2, *hw), generator=gen)
    label[:, :2] = 255
    return label


def _seg_logits(gen, hw=(8, 12)):
    """(2, C + 1, h, w) segmentation logits, a leaf that takes the loss's gradient."""
    return torch.randn(2, NUM_CLASSES + 1, *hw, generator=gen).requires_grad_()


def _split_ce_inputs(gen):
    return (_seg_logits(gen), _pseudo_label(gen))


def _saliency_loss_inputs(gen):
    salient = (torch.rand(2, 32, 48, generator=gen) > 0.6).to(torch.uint8)
    return (_seg_logits(gen), salient)


def _dense_energy_inputs(gen):
    """RGB crops (0..255), soft-max probabilities (a leaf), a valid-crop mask, labels."""
    image = torch.rand(2, 3, 32, 48, generator=gen) * 255
    probs = torch.randn(2, NUM_CLASSES + 1, 32, 48, generator=gen).softmax(1).requires_grad_()
    roi = torch.ones(2, 32, 48)
    roi[:, :, -6:] = 0
    return (image, probs, roi, _pseudo_label(gen))


def examples():
    return [
        ComponentExample('SplitCrossEntropyLoss', kind='loss', inputs=_split_ce_inputs),
        ComponentExample('SaliencyLoss', dict(mode='intended'), kind='loss',
                         inputs=_saliency_loss_inputs),
        ComponentExample('DenseEnergyLoss', dict(), kind='loss',
                         inputs=_dense_energy_inputs),
        ComponentExample('GETAMNet', {k: v for k, v in TINY_GETAM_NET.items() if k != 'type'},
                         kind='classifier', inputs=_classifier_batch,
                         built_with=_joint_phase_losses, roles=('segmenter', 'phased')),
        ComponentExample('GETAMViT', {k: v for k, v in TINY_BACKBONES['vit'].items()
                                      if k != 'type'}, kind='module', inputs=_images),
        ComponentExample('GETAMCAM', dict(start_layer=START_LAYER), inputs=_cam_inputs),
        ComponentExample('AttentionRolloutCAM', inputs=_cam_inputs),
        ComponentExample('GETAMOnlineLabels', dict(opening=3)),
        ComponentExample('GETAMScheduleHook', dict(cls_fraction=0.5)),
        ComponentExample('TrainGETAM', dict(name='getam', model=dict(TINY_GETAM_NET), crop=64,
                                            long_side=(56, 72))),
    ]
