# NSROM on VOC 2012, the project's arithmetic; needs VOC2012 + SBD, saliency_aug, VGG16 + DeepLab.
# NSROM on PASCAL VOC 2012 with the project's arithmetic instead of the reference's.
# Differs from nsrom::voc12_vgg16_deeplabv2.py only in: float attention maps (quantize=False on
# the accumulation hook) and both DeepLab CRF passes (round 1 on train_aug, the test) on the
# raw RGB image (image='raw_rgb').  No published number was produced this way.
#
#   wsss-prepare --for nsrom::voc12_vgg16_deeplabv2_fixed.py
#   wsss-run nsrom::voc12_vgg16_deeplabv2_fixed.py
#
# Data and weights (items; `wsss-prepare --for` gets them): voc12-aug (VOC 2012 + SBD),
# voc12-saliency-aug, torchvision-vgg16, deeplabv2-r101-coco.
_base_ = ['nsrom::voc12_vgg16_deeplabv2.py']
work_dir = 'work_dirs/nsrom_voc12_vgg16_deeplabv2_fixed'

# the base's stages with the switches to the intended behaviour: float accumulated maps, the
# CRF of both predictions on the raw RGB image
crf_raw_rgb = dict(type='DenseCRF', preset='deeplab', image='raw_rgb')
stages = dict(
    classify=dict(custom_hooks=[dict(type='OAAAccumulationHook', start_epoch=1, filter=None,
                                     score_filter=0.1, quantize=False)]),
    predict_train_aug=dict(crf=crf_raw_rgb),
    test=dict(crf=crf_raw_rgb))
