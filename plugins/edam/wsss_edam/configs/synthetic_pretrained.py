# EDAM on SyntheticShapes from a ResNet-38 pretrained on the ShapeCorpus, CPU; needs no files.
# Differs from edam::synthetic.py (which trains the ResNet-38 from scratch) only in:
#   - edam_pretrain: the same ResNet-38 (1/8 width) pretrained on the ShapeCorpus, the offline
#     stand-in for ImageNet (docs/pretraining.md), 3 epochs at 96 px (4 took 1547 s on 2
#     cores; 3 fit the 20-minute budget); cached in $WSSS_CACHE/pretrained, reused by later runs;
#   - edam_classify starts from it (pretrained_from), with the ImageNet normalisation the
#     pretraining used and the reference's fine-tuning structure: the backbone at the base
#     rate (AdamW 2e-4), EDAM's new layers x10 (2e-3).
# Not measured end to end yet; edam's RESULTS.md gets its figures when it is.
#
#   wsss-run edam::synthetic_pretrained.py          (work_dirs/edam_synthetic_pretrained)
_base_ = ['edam::synthetic.py']
work_dir = 'work_dirs/edam_synthetic_pretrained'

resnet38 = dict(type='ResNet38', width_mult=1 / 8, final_relu=False, frozen_stages=(),
                norm_eval=False)

stages = dict(
    edam_pretrain=dict(type='Pretrain', before='edam_classify', backbone=resnet38,
                       max_epochs=3, batch_size=64),
    edam_classify=dict(pretrained_from='edam_pretrain',
                       model=dict(data_preprocessor=dict(_delete_=True, type='NormalizeImages')),
                       optim_wrapper=dict(optimizer=dict(lr=2e-4),
                                          paramwise_cfg=dict(lr_mults=dict(new=10.0)))),
)
