# The quickstart from a pretrained backbone (SmallResNet pretrained on the ShapeCorpus), CPU; needs no files.
#   pretrain (ShapeCorpus, the offline stand-in for ImageNet; cached in $WSSS_CACHE and
#   reused by every later run) -> classify (fine-tuned from it) -> the quickstart's CAMs,
#   pseudo labels, evaluations and sheet.
# Differs from core::quickstart.py in: the pretrain stage; the classifier starts from its
# backbone (pretrained_from) with the ImageNet normalisation pretraining used, and its
# backbone learns at half the head's rate (the fine-tuning structure of the reference
# recipes: a pretrained trunk, new heads at a higher rate; at a tenth the classifier
# underfit on another SyntheticShapes variant, 0.943 val mAP against 0.992 at half:
# RESULTS.md, session 13).
# Run: wsss-run core::quickstart_pretrained.py
_base_ = ['core::quickstart.py']
work_dir = 'work_dirs/quickstart_pretrained'

stages = dict(
    pretrain=dict(type='Pretrain', before='classify', backbone=dict(type='SmallResNet'),
                  max_epochs=6, batch_size=64, channels_last=True),
    classify=dict(pretrained_from='pretrain',
                  model=dict(data_preprocessor=dict(_delete_=True, type='NormalizeImages')),
                  optim_wrapper=dict(type='OptimWrapper',
                                     optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4),
                                     paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.5)}))),
)
