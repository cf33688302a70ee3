# A fragment (not a runnable config): NSROM's stages of nsrom::synthetic.py switched to OAA's
# VGG16 stand-in pretrained on the ShapeCorpus; it brings oaa::_recipes/synthetic_pretrained.py
# (the stage oaa_pretrain and OAA's switched stages, `oaa_pretrained_stages`) with it.
# nsrom_classify and nsrom_oacam: the VGG (1/4 width, OAA's strides) instead of the
# SmallResNet, from the pretrained weights, ImageNet normalisation, the trunk at a tenth of the
# head's AdamW rate, colour jitter on the classifier (fixed geometry for accumulation).
_base_ = ['oaa::_recipes/synthetic_pretrained.py']

nsrom_pretrained_stages = dict(
    nsrom_classify=dict(pretrained_from='oaa_pretrain', pipeline=_base_.jitter_fixed_geometry,
                        model=dict(backbone=_base_.vgg_standin,
                                   data_preprocessor=_base_.imagenet_norm),
                        optim_wrapper=_base_.finetune_optim),
    nsrom_oacam=dict(pretrained_from='oaa_pretrain',
                     model=dict(backbone=_base_.vgg_standin,
                                data_preprocessor=_base_.imagenet_norm),
                     optim_wrapper=_base_.finetune_optim),
)
