# OAA-drop on VOC 2012; needs VOC2012 + SBD, saliency_aug, VGG16 + COCO-init DeepLab weights.
# OAA-drop (the TPAMI extension of OAA): as oaa::voc12_vgg16.py, with the attention-drop input
# layer during classifier training: with probability 0.5 per image, the pixels where the
# image's latest accepted attention map exceeds 0.6 are set to the mean colour; the 8-bit
# maps are resized as the reference does (OpenCV on uint8, quantize=True).
# Reported: 67.5 mIoU on val, 68.8 with CRF (OAA-PyTorch README).  The corrected arithmetic
# (float maps, CRF on the raw RGB image): oaa::voc12_vgg16_drop_fixed.py.
#
#   wsss-prepare --for oaa::voc12_vgg16_drop.py && wsss-run oaa::voc12_vgg16_drop.py
#
# Data and weights (items; `wsss-prepare --for` gets them): voc12-aug (VOC 2012 + SBD),
# voc12-saliency-aug, torchvision-vgg16, deeplabv2-r101-coco.
_base_ = ['oaa::voc12_vgg16.py']
work_dir = 'work_dirs/oaa_voc12_vgg16_drop'

# the base's stages; the classifier's accumulation hook also drops attention
stages = dict(classify=dict(custom_hooks=[
    dict(type='OAAAccumulationHook', start_epoch=1, filter='topk', quantize=True,
         drop=dict(prob=0.5, threshold=0.6))]))
