# OAA on VOC 2012, the project's arithmetic; needs VOC2012 + SBD, saliency_aug, VGG16 + DeepLab.
# OAA on PASCAL VOC 2012 with the project's arithmetic instead of the reference's.
# Differs from oaa::voc12_vgg16.py only in: float attention maps (quantize=False on the
# accumulation hook and on ExportAttention) and the DeepLab test's CRF on the raw RGB image
# (image='raw_rgb').  No published number was produced this way.
#
#   wsss-prepare --for oaa::voc12_vgg16_fixed.py && wsss-run oaa::voc12_vgg16_fixed.py
#
# Data and weights (items; `wsss-prepare --for` gets them): voc12-aug (VOC 2012 + SBD),
# voc12-saliency-aug, torchvision-vgg16, deeplabv2-r101-coco.
_base_ = ['oaa::voc12_vgg16.py']
work_dir = 'work_dirs/oaa_voc12_vgg16_fixed'

classify_float = dict(
    type='TrainClassifier', name='classify', train_split='train_aug', val_split=None,
    model=dict(type='OAAClassifier', backbone={{_base_.vgg16}}),
    pipeline={{_base_.oaa_pipeline}}, max_epochs=15, batch_size=1, num_workers=4,
    optim_wrapper={{_base_.oaa_optim}}, param_scheduler={{_base_.oaa_schedule}},
    log_interval=500,
    custom_hooks=[dict(type='OAAAccumulationHook', start_epoch=1, filter='topk',
                       quantize=False)])
export_float = dict(type='ExportAttention', name='accumulated', source='classify',
                    split='train_aug', quantize=False)
test_raw_rgb = dict(type='TestSegmentor', name='test', checkpoint='deeplab',
                    recipe='voc12_deeplabv2_r101',
                    crf=dict(type='DenseCRF', preset='deeplab', image='raw_rgb'))
stages = [classify_float, export_float, {{_base_.eval_accumulated}}, {{_base_.labels}},
          {{_base_.eval_labels}}, {{_base_.deeplab}}, test_raw_rgb]
