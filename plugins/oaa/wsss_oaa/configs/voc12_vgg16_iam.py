# OAA+ (integral attention) on VOC 2012; needs VOC2012 + SBD, saliency_aug, VGG16 + DeepLab weights.
# OAA+ : as oaa::voc12_vgg16.py, then the integral attention model
# (docs/methods/oaa.md#27-integral-attention-model): the same VGG16 network without pooling,
# trained for 15 epochs on the accumulated maps with the split positive / negative loss
# (threshold 0.001), batch 1 x 5 whose loss is summed, not averaged, as in the reference
# (loss_weight 5 with accumulative_counts 5); its maps (the image resized to short side 224 as
# in training, one scale, no flip, upsampled back; docs/methods/oaa.md#28-attention-map-inference)
# make the proxy labels.  Reported: 66.6 mIoU on val, 67.8 with CRF.  The corrected arithmetic
# (float maps, CRF on the raw RGB image): oaa::voc12_vgg16_iam_fixed.py.
#
#   wsss-prepare --for oaa::voc12_vgg16_iam.py && wsss-run oaa::voc12_vgg16_iam.py
#
# Data and weights (items; `wsss-prepare --for` gets them): voc12-aug (VOC 2012 + SBD),
# voc12-saliency-aug, torchvision-vgg16, deeplabv2-r101-coco.
_base_ = ['oaa::voc12_vgg16.py']
work_dir = 'work_dirs/oaa_voc12_vgg16_iam'

iam = dict(type='TrainIntegralAttention', targets='classify', before='labels',
           train_split='train_aug', val_split=None,
           model=dict(type='IntegralAttentionModel', backbone={{_base_.vgg16}},
                      loss_form='pytorch', threshold=1e-3, loss_weight=5.0),
           # the classifier's input pipeline (the targets were made at that size), packing
           # the attention targets too
           pipeline=[dict(type='Resize', short_side=224),
                     dict(type='ColorJitter', brightness=0.3, contrast=0.3, saturation=0.3,
                          hue=0.1),
                     dict(type='PackInputs', keys=('img', 'labels', 'attention'))],
           max_epochs=15, batch_size=1, num_workers=4, optim_wrapper={{_base_.oaa_optim}},
           param_scheduler={{_base_.oaa_schedule}}, log_interval=500)
iam_cams = dict(type='MakeCAMs', source='iam', split='train_aug', before='labels',
                scales=(1.0,), flip=False, batch_size=1, resize=dict(short_side=224))
eval_iam_cams = dict(type='EvaluateLabels', cams='iam_cams', threshold=0.25,
                     before='labels')
# the base's stages, the integral attention model's inserted before 'labels', which then
# reads its maps instead of the accumulated ones
stages = dict(iam=iam, iam_cams=iam_cams, eval_iam_cams=eval_iam_cams,
              labels=dict(cams='iam_cams'))
