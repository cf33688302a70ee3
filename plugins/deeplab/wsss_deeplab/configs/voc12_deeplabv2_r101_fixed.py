# DeepLab v2 ResNet-101 on VOC 2012, CRF input fixed; needs VOC2012 + SBD, COCO-init weights.
# DeepLab v2 ResNet-101 with deeplab-pytorch's recipe, its CRF input fixed.
# Differs from deeplab::voc12_deeplabv2_r101.py only in: the test's dense CRF sees the raw RGB
# image (image='raw_rgb'), not the mean-subtracted BGR image wrapped to uint8.
#
#   wsss-prepare --for deeplab::voc12_deeplabv2_r101_fixed.py
#   wsss-run deeplab::voc12_deeplabv2_r101_fixed.py
#
# Data and weights (items; `wsss-prepare --for` gets them): voc12-aug (VOC 2012 + SBD),
# deeplabv2-r101-coco.
_base_ = ['deeplab::voc12_deeplabv2_r101.py']
work_dir = 'work_dirs/voc12_deeplabv2_r101_fixed'

# the base's stages; the test CRF on the raw RGB image
stages = dict(test=dict(crf=dict(type='DenseCRF', preset='deeplab', image='raw_rgb')))
