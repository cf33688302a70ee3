# Fragment (not run alone): DeepLab v2's CPU recipe for SyntheticShapes, stages deeplab + test.
# Included through  _base_ = ['deeplab::_recipes/synthetic.py'] ; the including config sets what
# differs by stage name, e.g.
#   stages = dict(deeplab=dict(labels='labels_saliency', after='eval_labels_saliency'),
#                 test=dict(after='deeplab'))
# (``after`` places the two stages behind the config's own, since a base's stages come first).
# A second copy under another name: ``dict(_base_.stages.deeplab, labels=...)``.
#
# The DeepLab v2 head on the core's SmallResNet from scratch (no weights on disk; output
# stride 8), ASPP rates 2/4/6/8 scaled to its 12x12 feature maps, MSC 0.5/0.75; 1500 updates of
# 16 crops of 96 over scales 0.5..1.5, AdamW lr 2e-3 (weight decay 1e-4, none on the head's
# biases, no x10 / x20 head multipliers: SGD at 0.02 had barely left the class prior after
# 1000 iterations from scratch), poly 0.9.  Test on val with the dense CRF (deeplab preset, on
# the raw RGB image) in 2 processes, ``miou`` under deeplab-pytorch's ``gt_present`` convention
# like the VOC recipe (deeplab::_recipes/voc12_deeplabv2_r101.py).
stages = dict(
    deeplab=dict(
        type='TrainSegmentor',
        model=dict(type='DeepLabV2', backbone=dict(type='SmallResNet'), rates=(2, 4, 6, 8),
                   msc_scales=(0.5, 0.75),
                   data_preprocessor=dict(type='NormalizeImages', mean=(0.45, 0.45, 0.45),
                                          std=(0.25, 0.25, 0.25))),
        max_iters=1500, batch_size=16, crop_size=96, scales=(0.5, 0.75, 1.0, 1.25, 1.5),
        optim_wrapper=dict(type='OptimWrapper',
                           optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4),
                           constructor='DeepLabOptimWrapperConstructor',
                           paramwise_cfg=dict(head_lr_mult=1.0, head_bias_lr_mult=1.0,
                                              head_bias_decay_mult=0.0)),
        checkpoint_interval=500, log_interval=50),
    test=dict(
        type='TestSegmentor', checkpoint='deeplab', split='val',
        crf=dict(type='DenseCRF', preset='deeplab', image='raw_rgb'), workers=2,
        miou_convention='gt_present'),
)
