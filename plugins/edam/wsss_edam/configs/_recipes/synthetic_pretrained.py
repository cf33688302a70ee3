# A fragment (not a runnable config): EDAM's stages of edam::synthetic.py switched to the
# ResNet-38 stand-in pretrained on the ShapeCorpus.  edam::synthetic_pretrained.py merges
# `edam_pretrained_stages` into its `stages` by name.
#
#   edam_pretrain: ResNet-38 with psa's layout at 1/8 width (final_relu=False, nothing frozen:
#       edam::synthetic.py's network), pretrained on the ShapeCorpus (the offline stand-in for
#       ImageNet, docs/pretraining.md) rendered at 64 px (below the fine-tuning size, as
#       ImageNet's 224 px is below VOC's crops; 4 epochs at 96 px took 1547 s on 2 cores, over
#       the 20-minute budget), 5 epochs; cached in $WSSS_CACHE/pretrained.
#   edam_classify: starts from it (pretrained_from), with the ImageNet normalisation the
#       pretraining used and the reference's fine-tuning structure: the backbone at the base
#       rate (AdamW 2e-4), EDAM's new layers x10 (2e-3).
resnet38_standin = dict(type='ResNet38', width_mult=1 / 8, final_relu=False, frozen_stages=(),
                        norm_eval=False)

edam_pretrained_stages = dict(
    edam_pretrain=dict(type='Pretrain', before='edam_classify', backbone=resnet38_standin,
                       corpus=dict(type='ShapeCorpus', generator=dict(image_size=64)),
                       max_epochs=5, batch_size=64),
    edam_classify=dict(pretrained_from='edam_pretrain',
                       model=dict(data_preprocessor=dict(_delete_=True, type='NormalizeImages')),
                       optim_wrapper=dict(optimizer=dict(lr=2e-4),
                                          paramwise_cfg=dict(lr_mults=dict(new=10.0)))),
)
