# OAA on VOC 2012 (reference settings); needs VOC2012 + SBD, saliency_aug, VGG16 + DeepLab weights.
# OAA (Jiang et al., ICCV 2019) on PASCAL VOC 2012 with the reference hyper-parameters of
# OAA-PyTorch (docs/methods/oaa.md):
#   VGG16 classifier (pool4 stride 1, no pool5, dilated conv5) + online attention accumulation
#   over 15 epochs (from the 2nd on, top-k filter, last-epoch fill)
#   -> accumulated maps resized to the images (bicubic, min-max)
#   -> OAA proxy labels with saliency (0.3 / 0.9 / 32 / 0.8 / 1%)
#   -> DeepLab v2 ResNet-101 (deeplab-pytorch recipe, 20k iterations) -> val mIoU with CRF.
# Reported: 65.7 mIoU on val, 66.9 with CRF (OAA-PyTorch README).
#
#   wsss-prepare --for oaa::voc12_vgg16.py && wsss-run oaa::voc12_vgg16.py
#
# Data and weights (items; `wsss-prepare --for` gets them): voc12-aug (VOC 2012 + SBD
# train_aug), voc12-saliency-aug (the saliency_aug maps), torchvision-vgg16 (ImageNet VGG16)
# and deeplabv2-r101-coco (the DeepLab recipe's COCO-initialised ResNet-101).  wsss-run
# downloads nothing; wsss-prepare does, into $WSSS_DATA / $WSSS_WEIGHTS.
# The reference's arithmetic: 8-bit attention maps (quantize=True), as its PNG files, and the
# DeepLab test's CRF on deeplab-pytorch's mean-subtracted BGR image (the DeepLab recipe).
# oaa::voc12_vgg16_fixed.py runs float maps and the CRF on the raw RGB image.
# Differences from the reference, on purpose: accumulation is keyed by image id, so the
# classifier's data are shuffled (the reference must not shuffle); the store lives in memory
# and in the checkpoints instead of PNGs rewritten at every step.
_base_ = ['deeplab::_recipes/voc12_deeplabv2_r101.py']
seed = 0
work_dir = 'work_dirs/oaa_voc12_vgg16'
plugins = ['deeplab', 'oaa']

data = dict(type='VOC2012', data_root='item:voc12-aug', saliency_dir='item:voc12-saliency-aug')

# classifier: batch 1 x gradient accumulation 5, SGD nesterov, lr 1e-3 with x1/x2/x10/x20,
# weight decay on every group, lr x0.1 at epoch 10, ResizeShort(224) + colour jitter
oaa_optim = dict(type='OptimWrapper', accumulative_counts=5,
                 optimizer=dict(type='SGD', lr=1e-3, momentum=0.9, nesterov=True,
                                weight_decay=5e-4),
                 constructor='DeepLabOptimWrapperConstructor',
                 paramwise_cfg=dict(backbone_lr_mult=1.0, backbone_bias_lr_mult=2.0,
                                    head_lr_mult=10.0, head_bias_lr_mult=20.0,
                                    head_bias_decay_mult=1.0, weight_rule='name'))
oaa_schedule = [dict(type='MultiStepLR', milestones=[10], gamma=0.1, by_epoch=True)]
oaa_pipeline = [dict(type='Resize', short_side=224),
                dict(type='ColorJitter', brightness=0.3, contrast=0.3, saturation=0.3, hue=0.1),
                dict(type='PackInputs', keys=('img', 'labels'))]
vgg16 = dict(type='VGG16OAA', pretrained='item:torchvision-vgg16')

# DeepLab v2 ResNet-101 as deeplab::voc12_deeplabv2_r101.py, trained on the proxy labels

# the stages; oaa::voc12_vgg16_iam.py / _drop.py / _fixed.py change them by name
classify = dict(type='TrainClassifier', name='classify', train_split='train_aug', val_split=None,
                model=dict(type='OAAClassifier', backbone=vgg16), pipeline=oaa_pipeline,
                max_epochs=15, batch_size=1, num_workers=4, optim_wrapper=oaa_optim,
                param_scheduler=oaa_schedule, log_interval=500,
                custom_hooks=[dict(type='OAAAccumulationHook', start_epoch=1, filter='topk',
                                   quantize=True)])
export_accumulated = dict(type='ExportAttention', name='accumulated', source='classify',
                          split='train_aug', quantize=True)
eval_accumulated = dict(type='EvaluateLabels', name='eval_accumulated', cams='accumulated',
                        threshold=0.25)
# the recipe's stages (deeplab::_recipes/voc12_deeplabv2_r101.py), on the proxy labels
deeplab = dict(name='deeplab', labels='labels', after='eval_labels')
test = dict(name='test', after='deeplab')
labels = dict(type='RefineLabels', name='labels', cams='accumulated',
              refiners=[dict(type='OAAProxyLabels')], workers=8)
eval_labels = dict(type='EvaluateLabels', name='eval_labels', labels='labels')

stages = dict(classify=classify, accumulated=export_accumulated,
              eval_accumulated=eval_accumulated, labels=labels, eval_labels=eval_labels,
              deeplab=deeplab, test=test)
