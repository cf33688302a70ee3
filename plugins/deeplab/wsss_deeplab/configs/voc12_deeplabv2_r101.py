# DeepLab v2 (ResNet-101, ASPP 6/12/18/24, MSC 0.5/0.75 max fusion) with the recipe of
# kazuto1011/deeplab-pytorch (specs/oaa_nsrom_deeplab.md section 4): COCO-initialised
# weights, Caffe BGR input, crop 321, batch 5 x iter_size 2, 20000 updates, SGD lr 2.5e-4
# (x10 / x20 on the ASPP), poly 0.9 recomputed every 10 updates, test on val with the
# dense CRF (deeplab preset) on the raw RGB image.
#
# As given it trains on the ground truth of train_aug (the fully supervised reference,
# 76.65 / 77.93 mIoU with CRF as published).  A WSSS method trains it on its pseudo labels:
# add the labels stage before it and set  labels='<that stage>'  on 'deeplab'.
#
#   wsss-run deeplab::voc12_deeplabv2_r101.py --cfg-options data.data_root=/data/VOCdevkit/VOC2012
#
# Weights are never downloaded: put deeplab-pytorch's converted COCO checkpoint
# (deeplabv1_resnet101-coco.pth) under weights/, or start from ImageNet (timm's
# torchvision ResNet-101, read from the local cache only):
#   --cfg-options stages.0.model.init_checkpoint=None stages.0.model.input_style=imagenet \
#       stages.0.model.backbone.stride_in_1x1=False \
#       stages.0.model.backbone.timm_weights=resnet101.tv_in1k
seed = 0
work_dir = 'work_dirs/voc12_deeplabv2_r101'
plugins = ['deeplab']

data = dict(type='VOC2012', data_root='data/VOCdevkit/VOC2012')

stages = [
    dict(type='TrainSegmentor', name='deeplab', labels=None, train_split='train_aug',
         model=dict(type='DeepLabV2', num_classes=21,
                    backbone=dict(type='DeepLabResNet', depth=101, output_stride=8,
                                  stride_in_1x1=True, norm='frozen'),
                    rates=(6, 12, 18, 24), msc_scales=(0.5, 0.75), input_style='caffe',
                    init_checkpoint='weights/deeplabv1_resnet101-coco.pth'),
         max_iters=20000, batch_size=5, iter_size=2, lr=2.5e-4, momentum=0.9,
         weight_decay=5e-4, power=0.9, lr_interval=10, crop_size=321,
         scales=(0.5, 0.75, 1.0, 1.25, 1.5), flip=True, checkpoint_interval=5000,
         log_interval=100, num_workers=4),
    dict(type='TestSegmentor', name='test', checkpoint='deeplab', split='val',
         scales=(1.0,), flip=False,
         crf=dict(type='DenseCRF', preset='deeplab', image='raw_rgb'), workers=8),
]
