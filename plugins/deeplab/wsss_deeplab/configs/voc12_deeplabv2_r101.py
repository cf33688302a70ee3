# DeepLab v2 ResNet-101 on VOC 2012 (train_aug GT); needs VOC2012 + SBD, COCO-init DeepLab weights.
# DeepLab v2 (ResNet-101, ASPP 6/12/18/24, MSC 0.5/0.75 max fusion) with the recipe of
# kazuto1011/deeplab-pytorch (docs/methods/deeplab.md#4-the-reference-recipe): COCO-initialised
# weights, Caffe BGR input, crop 321, batch 5 x iter_size 2, 20000 updates, SGD lr 2.5e-4
# (x10 / x20 on the ASPP), poly 0.9 recomputed every 10 updates, test on val with the
# dense CRF (deeplab preset) on the image deeplab-pytorch's main.py crf passes: the
# mean-subtracted BGR image wrapped to uint8 (image='mean_subtracted_bgr', the quirk behind the
# published CRF figure).  deeplab::voc12_deeplabv2_r101_fixed.py runs it on the raw RGB image.
#
# As given it trains on the ground truth of train_aug (the fully supervised reference,
# 76.65 / 77.93 mIoU with CRF as published).  A WSSS method trains it on its pseudo labels:
# add the labels stage before it and set  labels='<that stage>'  on 'deeplab'.
#
#   wsss-prepare --for deeplab::voc12_deeplabv2_r101.py
#   wsss-run deeplab::voc12_deeplabv2_r101.py
#
# Data and weights (items; `wsss-prepare --for` gets them): voc12-aug (VOC 2012 + SBD) and
# deeplabv2-r101-coco (the authors' COCO-initialised Caffe weights, converted: the recipe's
# init_checkpoint).  The stages are the recipe deeplab::_recipes/voc12_deeplabv2_r101.py.  wsss-run downloads nothing; wsss-prepare does.  To start from ImageNet
# instead, after `wsss-prepare torchvision-resnet101`:
#   --cfg-options stages.deeplab.model.init_checkpoint=None stages.deeplab.model.input_style=imagenet \
#       stages.deeplab.model.backbone.stride_in_1x1=False \
#       stages.deeplab.model.backbone.pretrained=item:torchvision-resnet101
_base_ = ['deeplab::_recipes/voc12_deeplabv2_r101.py']
seed = 0
work_dir = 'work_dirs/voc12_deeplabv2_r101'
plugins = ['deeplab']

data = dict(type='VOC2012', data_root='item:voc12-aug')

# the recipe's stages (the values listed above), trained on the ground truth
stages = dict(deeplab=dict(labels=None))
