"""Named DeepLab recipes: the settings a method's config would otherwise restate.

``TrainSegmentor(recipe=NAME, ...)`` and ``TestSegmentor(recipe=NAME, ...)`` start from the
options below; options given in the config override them (a ``model`` with a ``type``
replaces the recipe's model, one without patches it).  The
expanded options are what the stage records and hashes, so a config written out in full and
one naming the recipe are the same stage.

* ``voc12_deeplabv2_r101``: deeplab-pytorch's recipe
  (``docs/methods/deeplab.md#4-the-reference-recipe``):
  DeepLab v2 ResNet-101 (OS 8, frozen BN, Caffe input, COCO-initialised), ASPP 6/12/18/24,
  MSC 0.5/0.75, train_aug, 20000 updates of 5 x 2 crops of 321, SGD 2.5e-4 (x10 / x20 head),
  poly 0.9 every 10 updates; test on val, one scale, dense CRF (deeplab preset) on the
  image deeplab-pytorch's ``main.py crf`` passes (below); ``miou`` = deeplab-pytorch's mean
  over the classes present in the ground truth (``miou_convention='gt_present'``, not
  hashed).
* ``synthetic``: the CPU recipe for SyntheticShapes: DeepLab v2 head on the core's
  SmallResNet from scratch (ASPP rates 2/4/6/8 for 12x12 maps), 1500 updates of 16 crops of
  96, AdamW 2e-3, poly 0.9; test on val with the CRF in 2 processes, ``miou`` under
  deeplab-pytorch's ``gt_present`` convention like the VOC recipe.

The VOC test recipe's CRF sees the mean-subtracted BGR image cast to uint8 with wrap-around
(``image='mean_subtracted_bgr'``), as deeplab-pytorch's ``main.py crf`` does: the quirk
behind its published CRF numbers, which the paper-named configs reproduce.  Their
``_fixed`` variants set ``crf=dict(type='DenseCRF', preset='deeplab', image='raw_rgb')``.
"""
from __future__ import annotations

from wsss_core.pipeline.recipes import with_recipe  # noqa: F401 (the stages' entry point)

_SYNTHETIC_NORM = dict(type='NormalizeImages', mean=(0.45, 0.45, 0.45), std=(0.25, 0.25, 0.25))
_CRF = dict(type='DenseCRF', preset='deeplab', image='raw_rgb')
_CRF_REFERENCE = dict(_CRF, image='mean_subtracted_bgr')    # deeplab-pytorch's main.py crf

TRAIN_RECIPES = {
    'voc12_deeplabv2_r101': dict(
        train_split='train_aug',
        model=dict(type='DeepLabV2', num_classes=21,
                   backbone=dict(type='DeepLabResNet', depth=101, output_stride=8,
                                 stride_in_1x1=True, norm='frozen'),
                   rates=(6, 12, 18, 24), msc_scales=(0.5, 0.75), input_style='caffe',
                   init_checkpoint='item:deeplabv2-r101-coco'),
        max_iters=20000, batch_size=5, iter_size=2, lr=2.5e-4, momentum=0.9,
        weight_decay=5e-4, power=0.9, lr_interval=10, crop_size=321,
        scales=(0.5, 0.75, 1.0, 1.25, 1.5), flip=True, checkpoint_interval=5000,
        log_interval=100, num_workers=4),
    'synthetic': dict(
        model=dict(type='DeepLabV2', backbone=dict(type='SmallResNet'), rates=(2, 4, 6, 8),
                   msc_scales=(0.5, 0.75), data_preprocessor=_SYNTHETIC_NORM),
        max_iters=1500, batch_size=16, crop_size=96, scales=(0.5, 0.75, 1.0, 1.25, 1.5),
        optim_wrapper=dict(type='OptimWrapper',
                           optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4),
                           constructor='DeepLabOptimWrapperConstructor',
                           paramwise_cfg=dict(head_lr_mult=1.0, head_bias_lr_mult=1.0,
                                              head_bias_decay_mult=0.0)),
        checkpoint_interval=500, log_interval=50),
}

TEST_RECIPES = {
    'voc12_deeplabv2_r101': dict(split='val', scales=(1.0,), flip=False,
                                 crf=_CRF_REFERENCE, workers=8,
                                 miou_convention='gt_present'),
    'synthetic': dict(split='val', crf=_CRF, workers=2, miou_convention='gt_present'),
}
