# MoANA (IRN route, DeepLab) on VOC 2012; needs VOC2012 + SBD, ResNet-50 + DeepLab weights.
# MoANA for WSSS on PASCAL VOC 2012: the released pipeline (docs/methods/moana.md §5 and §8,
# the IRN route of docs/methods/baseline.md#4-irn-and-the-irn-route) down to DeepLab v2 and
# its evaluation.
#
#   ResNet-50 (torchvision ImageNet weights, strides 2/2/2/1 = output stride 16, frozen BN,
#   frozen conv1/bn1) + MoANA (calibration 0.35 + 0.65 M, its own BN trained) + biased 1x1
#   classifier; multilabel soft-margin loss; train_aug, long side in [320, 640], flip, crop 512,
#   batch 16, 5 epochs, SGD lr 0.1 (backbone incl. MoANA) / 1.0 (classifier), weight decay 1e-4,
#   momentum 1e-4 (what IRN's optimiser effectively uses), poly 0.9
#   -> CAMs on train_aug (scales 1.0/0.5/1.5/2.0 + flip; bias-free maps)
#   -> CAM mIoU at background 0.16 (MoANA's; IRN 0.15)
#   -> IR labels (fg 0.30 / bg 0.05, label CRF gt_prob 0.7, G(3,3) B(50,5,10), 10 iterations)
#   -> IRN (plain ImageNet ResNet-50 as in the original IRN, frozen; boundary + displacement
#      branches; crop 512, batch 16, 3 epochs, lr 0.1 x1 / x10, weight decay 1e-4)
#   -> random walk (beta 10, 2^8 steps, radius 5, background 0.25) on train_aug
#   -> DeepLab v2 ResNet-101 -> val.
#
# The released code's behaviour where the project has a switch for it:
# * MoANA's BatchNorm at CAM inference uses the statistics of each image + flip pair
#   (inference_bn='batch', MakeCAMs batch_size=1): the released network never leaves
#   training mode;
# * DeepLab's test CRF on deeplab-pytorch's mean-subtracted BGR image (the DeepLab recipe).
# moana::voc12_resnet50_irn_fixed.py runs running statistics and the CRF on the raw RGB image.
# Decisions the released code leaves open (docs/methods/moana.md §8, §10), made explicit here:
# * The IRN backbone is the plain ImageNet ResNet-50 (the original IRN), not the CAM network
#   with an untrained MoANA block; backbone_from='classify' (with the classifier's backbone
#   config) would use the trained CAM backbone instead.
# No MoANA VOC numbers are published (docs/methods/moana.md#9-reported-numbers).
#
#   wsss-prepare --for moana::voc12_resnet50_irn.py && wsss-run moana::voc12_resnet50_irn.py
#
# Data and weights (items; `wsss-prepare --for` gets them): voc12-aug (VOC 2012 + SBD,
# SegmentationClassAug), torchvision-resnet50 (ImageNet ResNet-50: the classifier and IRN)
# and deeplabv2-r101-coco (the DeepLab recipe's COCO init).  wsss-run downloads nothing;
# wsss-prepare does, into $WSSS_DATA / $WSSS_WEIGHTS.
_base_ = ['deeplab::_recipes/voc12_deeplabv2_r101.py']
seed = 0
work_dir = 'work_dirs/moana_voc12_resnet50_irn'
plugins = ['deeplab', 'moana']

data = dict(type='VOC2012', data_root='item:voc12-aug')

resnet50_weights = 'item:torchvision-resnet50'
cam_backbone = dict(type='TorchvisionResNet', output_stride=16, pretrained=resnet50_weights,
                    norm_eval=True, frozen_stem=True)
# MoANA's BatchNorms at CAM inference normalise each image + flip pair with its own statistics,
# as in the released code, whose network never leaves training mode (MakeCAMs batch_size=1)
moana_wsss = dict(preset='wsss', inference_bn='batch')
classify_pipeline = [dict(type='RandomLongSide', low=320, high=640),
                     dict(type='RandomHorizontalFlip'),
                     # irn crops the normalised image with zero padding: the mean colour
                     dict(type='RandomPadCrop', size=512, img_pad_mode='mean'),
                     dict(type='PackInputs', keys=('img', 'labels'))]
classify_optim = dict(type='OptimWrapper',
                      optimizer=dict(type='SGD', lr=0.1, momentum=1e-4, weight_decay=1e-4),
                      paramwise_cfg=dict(custom_keys={'classifier': dict(lr_mult=10.0)}))
classify_schedule = [dict(type='PolyLR', power=0.9, eta_min=0.0, by_epoch=True, begin=0,
                          end=5, convert_to_iter_based=True)]

# the stages; moana::voc12_resnet50_irn_fixed.py changes them by name
classify = dict(type='TrainClassifier', name='classify', train_split='train_aug', val_split=None,
                model=dict(type='MoANAClassifier', loss='multilabel_soft_margin', cam_bias=False,
                           backbone=dict(type='WithMoANA', backbone=cam_backbone,
                                         moana=moana_wsss)),
                max_epochs=5, batch_size=16, num_workers=4, drop_last=True,
                pipeline=classify_pipeline, optim_wrapper=classify_optim,
                param_scheduler=classify_schedule, log_interval=50)
cams = dict(type='MakeCAMs', name='cams', source='classify', split='train_aug',
            scales=(1.0, 0.5, 1.5, 2.0), flip=True, batch_size=1)
# irn's chainercv evaluation: nan-mean over classes in ground truth or prediction
eval_cams = dict(type='EvaluateLabels', name='eval_cams', cams='cams', threshold=0.16,
                 miou_convention='union')
ir_labels = dict(type='RefineLabels', name='ir_labels', cams='cams', workers=8,
                 refiners=[dict(type='IRLabels', fg_threshold=0.30, bg_threshold=0.05)])
irn = dict(type='TrainIRN', name='irn', labels='ir_labels',
           model=dict(type='InterPixelRelationNet', radius=10,
                      backbone=dict(type='TorchvisionResNet', output_stride=16,
                                    out_indices=(0, 1, 2, 3, 4), norm_eval=True,
                                    pretrained=resnet50_weights)),
           crop=512, rescale=(0.5, 1.5), batch_size=16, max_epochs=3, lr=0.1,
           displacement_lr_mult=10.0, weight_decay=1e-4, num_workers=4)
rw_labels = dict(type='RandomWalkLabels', name='rw_labels', cams='cams', irn='irn', radius=5,
                 beta=10, exp_times=8, bg_threshold=0.25)
eval_rw_labels = dict(type='EvaluateLabels', name='eval_rw_labels', labels='rw_labels',
                      miou_convention='union')
# the recipe's stages (deeplab::_recipes/voc12_deeplabv2_r101.py) on these labels; its CRF:
# deeplab-pytorch's image (MoANA's DeepLab is deeplab-pytorch)
deeplab = dict(name='deeplab', labels='rw_labels', after='eval_rw_labels')
test = dict(name='test', after='deeplab')

stages = dict(
    classify=classify, cams=cams, eval_cams=eval_cams, ir_labels=ir_labels, irn=irn,
    rw_labels=rw_labels, eval_rw_labels=eval_rw_labels, deeplab=deeplab, test=test)
