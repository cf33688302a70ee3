# Fragment (not run alone): the options that start the DeepLab network of
# deeplab::_recipes/synthetic.py from the ShapeCorpus-pretrained SmallResNet (the offline
# stand-in for ImageNet, docs/pretraining.md) instead of from scratch.
#   smallresnet_pretrain: the same Pretrain as core::quickstart_pretrained.py (SmallResNet,
#       6 epochs on the 96 px ShapeCorpus), so both share one file in $WSSS_CACHE/pretrained.
#   deeplab_pretrained: what the `deeplab` stage (or a copy under another name) changes to
#       start from it (pretrained_from='pretrain'), with the reference's fine-tuning
#       structure: the ImageNet normalisation the pretraining used, the pretrained trunk at
#       AdamW 2e-4 and the new ASPP head at ten times that (deeplab-pytorch: SGD x1 trunk,
#       x10 / x20 head).
# A config merges them:
#   stages = dict(pretrain=_base_.smallresnet_pretrain, deeplab=_base_.deeplab_pretrained)
smallresnet_pretrain = dict(type='Pretrain', before='deeplab', backbone=dict(type='SmallResNet'),
                            max_epochs=6, batch_size=64, channels_last=True)

deeplab_pretrained = dict(
    pretrained_from='pretrain',
    model=dict(data_preprocessor=dict(_delete_=True, type='NormalizeImages')),
    optim_wrapper=dict(optimizer=dict(lr=2e-4),
                       paramwise_cfg=dict(head_lr_mult=10.0, head_bias_lr_mult=10.0)))
