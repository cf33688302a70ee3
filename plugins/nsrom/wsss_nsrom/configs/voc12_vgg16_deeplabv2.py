# NSROM on VOC 2012, two DeepLab rounds; needs VOC2012 + SBD, saliency_aug, VGG16 + DeepLab weights.
# NSROM (Yao et al., CVPR 2021) on PASCAL VOC 2012 with the reference settings
# (docs/methods/nsrom.md), two DeepLab rounds in one config:
#   NSROM classifier: VGG16 (OAA's) with the GloRe unit in the head, 256x256 warp + colour
#   jitter, batch 5, SGD nesterov 1e-3 x1/x2/x10/x20, x0.1 at epochs 5 and 10, 15 epochs,
#   accumulation skipping classes with sigmoid score < 0.1, 8-bit maps (quantize=True)
#   -> plain CAMs -> OA-CAM integral model (GloRe head, NSROM's saturating IAM loss)
#   -> initial pseudo labels: OAA background extraction on the OA-CAMs + potential object
#      mining with the plain CAMs
#   -> DeepLab v2 ResNet-101 round 1 -> CRF predictions on train_aug
#   -> non-salient region masking -> DeepLab round 2 from the same COCO initialisation
#   -> val with CRF.  Reported: 70.4 mIoU on val (NSROM README, released checkpoint).
#
#   wsss-prepare --for nsrom::voc12_vgg16_deeplabv2.py && wsss-run nsrom::voc12_vgg16_deeplabv2.py
#
# Data and weights (items; `wsss-prepare --for` gets them): voc12-aug (VOC 2012 + SBD),
# voc12-saliency-aug (the saliency_aug maps), torchvision-vgg16 (ImageNet VGG16) and
# deeplabv2-r101-coco (the COCO-initialised ResNet-101 both DeepLab rounds start from).
# wsss-run downloads nothing; wsss-prepare does, into $WSSS_DATA / $WSSS_WEIGHTS.
# No hand edits between the rounds: round 2 reads round 1's artifacts through the pipeline.
# The reference's arithmetic: 8-bit maps (quantize=True) and both DeepLab CRF passes on
# deeplab-pytorch's mean-subtracted BGR image (the DeepLab recipe);
# nsrom::voc12_vgg16_deeplabv2_fixed.py runs float maps and the CRF on the raw RGB image.
_base_ = ['deeplab::_recipes/voc12_deeplabv2_r101.py']
seed = 0
work_dir = 'work_dirs/nsrom_voc12_vgg16_deeplabv2'
plugins = ['deeplab', 'oaa', 'nsrom']

data = dict(type='VOC2012', data_root='item:voc12-aug', saliency_dir='item:voc12-saliency-aug')

optim = dict(type='OptimWrapper',
             optimizer=dict(type='SGD', lr=1e-3, momentum=0.9, nesterov=True, weight_decay=5e-4),
             constructor='DeepLabOptimWrapperConstructor',
             paramwise_cfg=dict(backbone_lr_mult=1.0, backbone_bias_lr_mult=2.0,
                                head_lr_mult=10.0, head_bias_lr_mult=20.0,
                                head_bias_decay_mult=1.0, weight_rule='name'))
schedule = [dict(type='MultiStepLR', milestones=[5, 10], gamma=0.1, by_epoch=True)]
warp = dict(type='Resize', size=(256, 256), interpolation='bilinear')
jitter = dict(type='ColorJitter', brightness=0.3, contrast=0.3, saturation=0.3, hue=0.1)
vgg16 = dict(type='VGG16OAA', pretrained='item:torchvision-vgg16')
classifier_training = dict(train_split='train_aug', val_split=None, max_epochs=15,
                           batch_size=5, num_workers=4, optim_wrapper=optim,
                           param_scheduler=schedule, log_interval=200)
inference = dict(split='train_aug', scales=(1.0,), flip=False, batch_size=1,
                 resize=dict(size=(256, 256)))

# the stages, named so that nsrom::voc12_vgg16_deeplabv2_fixed.py reuses them ({{_base_.<name>}})
classify = dict(type='TrainClassifier', name='classify',
                model=dict(type='NSROMClassifier', backbone=vgg16),
                pipeline=[warp, jitter, dict(type='PackInputs', keys=('img', 'labels'))],
                custom_hooks=[dict(type='OAAAccumulationHook', start_epoch=1, filter=None,
                                   score_filter=0.1, quantize=True)],
                **classifier_training)
cams = dict(type='MakeCAMs', name='cams', source='classify', **inference)
oacam = dict(type='TrainIntegralAttention', name='oacam', targets='classify',
             model=dict(type='OACAMModel', backbone=vgg16, loss_form='nsrom'),
             pipeline=[warp, jitter,
                       dict(type='PackInputs', keys=('img', 'labels', 'attention'))],
             **classifier_training)
oacams = dict(type='MakeCAMs', name='oacams', source='oacam', **inference)
labels = dict(type='RefineLabels', name='labels', cams='oacams',
              extra_cams=dict(plain_cams='cams'),
              refiners=[dict(type='OAAProxyLabels'),
                        dict(type='PotentialObjectMining', cams_key='plain_cams')],
              workers=8)
eval_labels = dict(type='EvaluateLabels', name='eval_labels', labels='labels')
# the DeepLab recipe's stages (deeplab::_recipes/voc12_deeplabv2_r101.py), twice: round 1 and
# its CRF predictions on the training images (the recipe's CRF: deeplab-pytorch's image, as
# NSROM's trainaug_pred.py)
deeplab1 = dict(_base_.stages.deeplab, name='deeplab1', labels='labels')
predict_train_aug = dict(_base_.stages.test, name='predict_train_aug', checkpoint='deeplab1',
                         split='train_aug')
masked_labels = dict(type='MaskNonSalientRegions', name='masked_labels',
                     predictions='predict_train_aug', labels='labels', dilation=30, workers=8)
eval_masked_labels = dict(type='EvaluateLabels', name='eval_masked_labels',
                          labels='masked_labels')
# round 2 from the same initial weights, then the test
deeplab2 = dict(_base_.stages.deeplab, name='deeplab2', labels='masked_labels')
test = dict(name='test', checkpoint='deeplab2', after='deeplab2')

stages = dict(
    deeplab=None,   # the recipe's single round: replaced by deeplab1 / deeplab2
    classify=classify, cams=cams, oacam=oacam, oacams=oacams, labels=labels,
    eval_labels=eval_labels, deeplab1=deeplab1, predict_train_aug=predict_train_aug,
    masked_labels=masked_labels, eval_masked_labels=eval_masked_labels, deeplab2=deeplab2,
    test=test)
