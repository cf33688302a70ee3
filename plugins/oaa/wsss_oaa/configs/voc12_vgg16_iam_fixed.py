# OAA+ on VOC 2012, the project's arithmetic; needs VOC2012 + SBD, saliency_aug, VGG16 + DeepLab.
# OAA+ on PASCAL VOC 2012 with the project's arithmetic instead of the reference's.
# Differs from oaa::voc12_vgg16_iam.py only in: float attention maps (quantize=False on the
# accumulation hook and on ExportAttention) and the DeepLab test's CRF on the raw RGB image
# (image='raw_rgb').  No published number was produced this way.
#
#   wsss-prepare --for oaa::voc12_vgg16_iam_fixed.py && wsss-run oaa::voc12_vgg16_iam_fixed.py
#
# Data and weights (items; `wsss-prepare --for` gets them): voc12-aug (VOC 2012 + SBD),
# voc12-saliency-aug, torchvision-vgg16, deeplabv2-r101-coco.
_base_ = ['oaa::voc12_vgg16_iam.py']
work_dir = 'work_dirs/oaa_voc12_vgg16_iam_fixed'

# the base's stages with the switches to the intended behaviour: float attention maps, the
# test CRF on the raw RGB image
stages = dict(
    classify=dict(custom_hooks=[dict(type='OAAAccumulationHook', start_epoch=1, filter='topk',
                                     quantize=False)]),
    accumulated=dict(quantize=False),
    test=dict(crf=dict(type='DenseCRF', preset='deeplab', image='raw_rgb')))
