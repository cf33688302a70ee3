# MoANA on VOC 2012, the project's behaviour; needs VOC2012 + SBD, ResNet-50 + DeepLab weights.
# MoANA for WSSS on PASCAL VOC 2012 with the project's behaviour instead of the release's.
# Differs from moana::voc12_resnet50_irn.py only in: MoANA's BatchNorms use their running
# statistics at CAM inference (inference_bn='running') and the DeepLab test's dense CRF sees the
# raw RGB image (image='raw_rgb').
#
#   wsss-prepare --for moana::voc12_resnet50_irn_fixed.py
#   wsss-run moana::voc12_resnet50_irn_fixed.py
#
# Data and weights (items; `wsss-prepare --for` gets them): voc12-aug (VOC 2012 + SBD),
# torchvision-resnet50, deeplabv2-r101-coco.
_base_ = ['moana::voc12_resnet50_irn.py']
work_dir = 'work_dirs/moana_voc12_resnet50_irn_fixed'

# the base's stages with the switches to the intended behaviour: MoANA's batch norm on running
# statistics at inference, the test CRF on the raw RGB image
stages = dict(
    classify=dict(model=dict(backbone=dict(moana=dict(inference_bn='running')))),
    test=dict(crf=dict(type='DenseCRF', preset='deeplab', image='raw_rgb')))
