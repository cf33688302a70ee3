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

classify_running_bn = dict(
    type='TrainClassifier', name='classify', train_split='train_aug', val_split=None,
    model=dict(type='MoANAClassifier', loss='multilabel_soft_margin', cam_bias=False,
               backbone=dict(type='WithMoANA', backbone={{_base_.cam_backbone}},
                             moana=dict(preset='wsss', inference_bn='running'))),
    max_epochs=5, batch_size=16, num_workers=4, drop_last=True,
    pipeline={{_base_.classify_pipeline}}, optim_wrapper={{_base_.classify_optim}},
    param_scheduler={{_base_.classify_schedule}}, log_interval=50)
test_raw_rgb = dict(type='TestSegmentor', name='test', checkpoint='deeplab',
                    recipe='voc12_deeplabv2_r101',
                    crf=dict(type='DenseCRF', preset='deeplab', image='raw_rgb'))

stages = [classify_running_bn, {{_base_.cams}}, {{_base_.eval_cams}}, {{_base_.ir_labels}},
          {{_base_.irn}}, {{_base_.rw_labels}}, {{_base_.eval_rw_labels}}, {{_base_.deeplab}},
          test_raw_rgb]
