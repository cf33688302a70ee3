# EDAM on VOC 2012, CRF input fixed; needs VOC2012 + SBD, saliency, ResNet-38 + DeepLab weights.
# EDAM on PASCAL VOC 2012 with DeepLab's CRF input fixed.
# Differs from edam::voc12_resnet38.py only in: the DeepLab test's dense CRF sees the raw RGB
# image (image='raw_rgb'), not the mean-subtracted BGR image wrapped to uint8.
#
#   wsss-prepare --for edam::voc12_resnet38_fixed.py && wsss-run edam::voc12_resnet38_fixed.py
#
# Data and weights (items; `wsss-prepare --for` gets them): voc12-aug (VOC 2012 + SBD),
# voc12-saliency-poolnet, psa-resnet38, deeplabv2-r101-coco; voc12-saliency-poolnet and
# psa-resnet38 are downloaded by hand and given with --from (see edam::voc12_resnet38.py).
_base_ = ['edam::voc12_resnet38.py']
work_dir = 'work_dirs/edam_voc12_resnet38_fixed'

# the base's stages; the test CRF on the raw RGB image
stages = dict(test=dict(crf=dict(type='DenseCRF', preset='deeplab', image='raw_rgb')))
