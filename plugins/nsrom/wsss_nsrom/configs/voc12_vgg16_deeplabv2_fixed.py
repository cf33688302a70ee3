# NSROM on VOC 2012, the project's arithmetic; needs VOC2012 + SBD, saliency_aug, VGG16 + DeepLab.
# NSROM on PASCAL VOC 2012 with the project's arithmetic instead of the reference's.
# Differs from nsrom::voc12_vgg16_deeplabv2.py only in: float attention maps (quantize=False on
# the accumulation hook) and both DeepLab CRF passes (round 1 on train_aug, the test) on the
# raw RGB image (image='raw_rgb').  No published number was produced this way.
#
#   wsss-prepare --for nsrom::voc12_vgg16_deeplabv2_fixed.py
#   wsss-run nsrom::voc12_vgg16_deeplabv2_fixed.py
#
# Data and weights (items; `wsss-prepare --for` gets them): voc12-aug (VOC 2012 + SBD),
# voc12-saliency-aug, torchvision-vgg16, deeplabv2-r101-coco.
_base_ = ['nsrom::voc12_vgg16_deeplabv2.py']
work_dir = 'work_dirs/nsrom_voc12_vgg16_deeplabv2_fixed'

classify_float = dict(
    type='TrainClassifier', name='classify',
    model=dict(type='NSROMClassifier', backbone={{_base_.vgg16}}),
    pipeline=[{{_base_.warp}}, {{_base_.jitter}}, dict(type='PackInputs', keys=('img', 'labels'))],
    custom_hooks=[dict(type='OAAAccumulationHook', start_epoch=1, filter=None,
                       score_filter=0.1, quantize=False)],
    train_split='train_aug', val_split=None, max_epochs=15, batch_size=5, num_workers=4,
    optim_wrapper={{_base_.optim}}, param_scheduler={{_base_.schedule}}, log_interval=200)
crf_raw_rgb = dict(type='DenseCRF', preset='deeplab', image='raw_rgb')
predict_train_aug_raw_rgb = dict(type='TestSegmentor', name='predict_train_aug',
                                 checkpoint='deeplab1', recipe='voc12_deeplabv2_r101',
                                 split='train_aug', crf=crf_raw_rgb)
test_raw_rgb = dict(type='TestSegmentor', name='test', checkpoint='deeplab2',
                    recipe='voc12_deeplabv2_r101', crf=crf_raw_rgb)

stages = [classify_float, {{_base_.cams}}, {{_base_.oacam}}, {{_base_.oacams}}, {{_base_.labels}},
          {{_base_.eval_labels}}, {{_base_.deeplab1}}, predict_train_aug_raw_rgb,
          {{_base_.masked_labels}}, {{_base_.eval_masked_labels}}, {{_base_.deeplab2}},
          test_raw_rgb]
