# DeepLab v3+ ResNet-101 on VOC 2012 (train_aug GT); needs VOC2012 + SBD, torchvision ResNet-101.
# DeepLab v3+ (ResNet-101 at output stride 16, ASPP with image pooling at rates 6/12/18,
# decoder on the stride-4 features) on VOC 2012, as the stronger segmentation head users
# compare against.  Data, augmentation, schedule and test protocol are those of
# deeplab::voc12_deeplabv2_r101_fixed.py (crop 321, batch 5 x iter_size 2, 20000 updates, SGD
# 2.5e-4 with x10 / x20 on the head, poly 0.9, val with the deeplab dense CRF on the raw RGB
# image), so the two heads differ only in the head; no MSC (v3+ is usually trained without
# it).  Not a paper's config: the CRF runs on the raw image, not deeplab-pytorch's quirk.
#
#   wsss-prepare --for deeplab::voc12_deeplabv3plus_r101.py
#   wsss-run deeplab::voc12_deeplabv3plus_r101.py
#
# Data and weights (items; `wsss-prepare --for` gets them): voc12-aug (VOC 2012 + SBD) and
# torchvision-resnet101 (torchvision's ImageNet ResNet-101, the file timm's resnet101.tv_in1k
# names).  wsss-run downloads nothing; wsss-prepare does.  Another start: a local file with
#   --cfg-options stages.deeplab.model.init_checkpoint=PATH .
# Not run here: no VOC data offline; no measured figure exists for it yet.
_base_ = ['deeplab::_recipes/voc12_deeplabv2_r101.py']
seed = 0
work_dir = 'work_dirs/voc12_deeplabv3plus_r101'
plugins = ['deeplab']

data = dict(type='VOC2012', data_root='item:voc12-aug')

stages = dict(
    # the v2 recipe's data, schedule and test protocol (deeplab::_recipes/voc12_deeplabv2_r101.py)
    # with the v3+ network in place of the recipe's (_delete_: replaced, not merged)
    deeplab=dict(labels=None,
                 model=dict(_delete_=True, type='DeepLabV3Plus', num_classes=21,
                            backbone=dict(type='DeepLabResNet', depth=101, output_stride=16,
                                          out_indices=(0, 3), stride_in_1x1=False, norm='frozen',
                                          pretrained='item:torchvision-resnet101'),
                            rates=(6, 12, 18), msc_scales=(), input_style='imagenet')),
    test=dict(crf=dict(type='DenseCRF', preset='deeplab', image='raw_rgb')),
)
