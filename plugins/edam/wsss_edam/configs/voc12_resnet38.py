# EDAM on VOC 2012; needs VOC2012 + SBD, saliency maps, ResNet-38 and COCO-init DeepLab weights.
# EDAM (Wu et al., CVPR 2021) on PASCAL VOC 2012 with the reference settings
# (docs/methods/edam.md):
#   ResNet-38 (ImageNet weights converted to psa's names, conv1a/b2* frozen, BN frozen, no
#   ReLU after bn7) + DA layer + collaborative multi-attention over pairs of train_aug images
#   sharing a class; SGD 1e-3 momentum 0.9 wd 5e-4, groups x1 / x10 (new layers) / x1
#   (transformer), 2000 warm-up steps then poly 0.9; 4 pairs per batch; crop 368 after a
#   random long side in [256, 512], flip, colour jitter; one pass over a pair list in which
#   every image leads 25 pairs ("one pass equals 25 epochs")
#   -> DA masks on train_aug (scales 1.0/0.5/1.5/2.0 + flip) -> CRF (3 iterations) + saliency
#   fusion (theta 0.2, alpha 1e-6, beta 0.99999) -> DeepLab v2 ResNet-101 -> val with CRF.
# Reported: pseudo labels on VOC train 52.83 (masks) / 58.61 (CRF) / 68.11 (CRF + saliency);
# DeepLab on val 69.66 / 70.96 with CRF.  EDAM ran deeplab-pytorch unchanged, whose CRF sees the
# mean-subtracted BGR image wrapped to uint8; so does this config (the DeepLab recipe).
# edam::voc12_resnet38_fixed.py runs that CRF on the raw RGB image.
#
#   wsss-prepare --for edam::voc12_resnet38.py && wsss-run edam::voc12_resnet38.py
#
# Data and weights (items; `wsss-prepare --for` gets them): voc12-aug (VOC 2012 + SBD),
# voc12-saliency-poolnet (EDAM's PoolNet maps), psa-resnet38 (ResNet-38 model A1, ImageNet)
# and deeplabv2-r101-coco (the DeepLab recipe's COCO init).  voc12-saliency-poolnet and
# psa-resnet38 are downloaded by hand (`wsss-prepare ITEM` says from where), then installed
# with  wsss-prepare voc12-saliency-poolnet --from DIR_OR_ARCHIVE  and
# wsss-prepare psa-resnet38 --from FILE  (the MXNet .params, converted, or psa's .pth).
# wsss-run downloads nothing; wsss-prepare does, into $WSSS_DATA / $WSSS_WEIGHTS.
_base_ = ['deeplab::_recipes/voc12_deeplabv2_r101.py']
seed = 0
work_dir = 'work_dirs/edam_voc12_resnet38'
plugins = ['deeplab', 'edam']

data = dict(type='VOC2012', data_root='item:voc12-aug',
            saliency_dir='item:voc12-saliency-poolnet')

# the stages; edam::voc12_resnet38_fixed.py changes them by name
classify = dict(
    type='TrainPairClassifier', name='classify', train_split='train_aug', val_split=None,
    model=dict(type='EDAMClassifier',
               backbone=dict(type='ResNet38', pretrained='item:psa-resnet38',
                             final_relu=False)),
    passes=25, max_epochs=1, batch_size=4, num_workers=4, warmup_steps=2000, power=0.9,
    pipeline=[dict(type='RandomLongSide', low=256, high=512),
              dict(type='RandomHorizontalFlip'),
              dict(type='ColorJitter', brightness=0.3, contrast=0.3, saturation=0.3, hue=0.1),
              dict(type='RandomPadCrop', size=368, img_pad_mode='mean'),
              dict(type='PackInputs', keys=('img', 'labels'))],
    optim_wrapper=dict(type='OptimWrapper',
                       optimizer=dict(type='SGD', lr=1e-3, momentum=0.9, weight_decay=5e-4),
                       constructor='EDAMOptimWrapperConstructor'),
    # mixed precision on a GPU (AmpOptimWrapper, bf16 where supported), fp32 on CPU
    amp='auto', log_interval=100)
masks = dict(type='MakeCAMs', name='masks', source='classify', split='train_aug',
             generator=dict(type='DAMasks'), scales=(1.0, 0.5, 1.5, 2.0), flip=True,
             batch_size=1)
# scored as EDAM's eval.py does (psa-style: plain mean over all 21 classes)
eval_masks = dict(type='EvaluateLabels', name='eval_masks', cams='masks', threshold=0.5,
                  miou_convention='all_classes')
labels = dict(type='RefineLabels', name='labels', cams='masks', workers=8,
              refiners=[dict(type='DenseCRF', preset='edam', keep_probs=True),
                        dict(type='EDAMSaliencyFusion', preset='crf', scores='crf_probs')])
eval_labels = dict(type='EvaluateLabels', name='eval_labels', labels='labels',
                   miou_convention='all_classes')
# the recipe's stages (deeplab::_recipes/voc12_deeplabv2_r101.py) on these labels; its CRF:
# deeplab-pytorch's image (EDAM used deeplab-pytorch unchanged)
deeplab = dict(name='deeplab', labels='labels', after='eval_labels')
test = dict(name='test', after='deeplab')

stages = dict(
    classify=classify, masks=masks, eval_masks=eval_masks, labels=labels,
    eval_labels=eval_labels, deeplab=deeplab, test=test)
