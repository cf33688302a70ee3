# A fragment (not a runnable config): GETAM's SyntheticShapes stages as named stage sets, so
# that getam::synthetic.py, its pretrained variants and a config that runs several methods in
# one work dir (two GETAM networks side by side included) take them by name.
#
#   getam_synthetic_stages: the ViT-Tiny-sized encoder from scratch (getam::synthetic.py
#       says what differs from the VOC recipe), stages getam, getam_maps, getam_rollout_maps,
#       getam_plain_cams (each with its eval_*), getam_online_labels and getam_test.
#   getam_pretrained_stages: the same stage names, the encoder started from the ShapeCorpus
#       (getam_pretrain: the same ViT pretrained on the 64 px corpus, 5 epochs, AdamW 1e-3
#       one-cycle; the position embedding is resized from 4 x 4 to 6 x 6 tokens when loaded),
#       ImageNet normalisation, the whole network at one AdamW rate (1e-3), as the reference
#       trains every parameter at one rate (docs/methods/getam.md §2.7): the stand-ins are far
#       weaker than the CNN ones (the hybrid's corpus top-1 0.25), and the hybrid's classifier
#       reached 0.84 val mAP with the ViT at a tenth, 0.93 at half (RESULTS.md session 11), and
#       on another variant 0.903 at half, 0.953 at the full rate with the longer schedule
#       below (session 13).
#   getam_hybrid_pretrained_stages: as getam_pretrained_stages with the reference's other
#       backbone family at CPU size, the hybrid (the same encoder on a small ResNet stem:
#       stride 16, one bottleneck per stage, 32 / 64 / 128 channels, GroupNorm) with LayerScale,
#       pretrained 5 epochs (about 0.8 of the plain ViT's speed at 64 px, bench/RESULTS.md); its stages
#       are named getam_hybrid_pretrain, getam_hybrid, getam_hybrid_maps, ...
_norm = dict(type='NormalizeImages', mean=(0.45, 0.45, 0.45), std=(0.25, 0.25, 0.25))
_imagenet_norm = dict(type='NormalizeImages')
vit_tiny_encoder = dict(type='GETAMViT', model_name='vit_tiny_patch16_224', img_size=96,
                        embed_dim=192, depth=12, num_heads=3)
# LayerScale (timm's init_values, CaiT's per-channel residual gains, here 1e-5): each block
# starts near the identity, so the 12-block encoder first passes the stem's features through
# (without it the hybrid sat at the chance loss for 250 pretraining steps, one block learnt).
# The stem's GroupNorm has one group: at this width its bottlenecks have 8 / 16 / 32 channels,
# and 8 groups normalised 1-4 channels each, close to instance normalisation, which removes
# the per-image channel levels a texture is told by (the stem alone, pooled, stayed at the
# chance loss for 300 steps with 8 groups and left it with one: bench/vit_learning_probe.py
# --variant stem_gn8 / stem_gn1).
vit_hybrid_encoder = dict(vit_tiny_encoder, model_name='vit_base_r50_s16_384', init_values=1e-5,
                          hybrid_resnet=dict(layers=(1, 1, 1), channels=(32, 64, 128),
                                             stem_chs=32, num_groups=1))
_adamw = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4))


def _getam_stages(p, backbone, norm, optim_wrapper, **train_options):
    """GETAM's stages named after ``p`` (the training stage) on ``backbone``."""
    model = dict(type='GETAMNet', features=64, test_sizes=(64, 96, 160), data_preprocessor=norm,
                 backbone=backbone)
    one_scale = dict(type='MakeCAMs', source=p, split='train', scales=(1.0,), flip=False)
    train = dict(type='TrainGETAM', model=model, max_epochs=8, batch_size=16, crop=96,
                 long_side=(86, 110), val_split='val', optim_wrapper=optim_wrapper)
    train.update(train_options)
    return {
        p: train,
        # the maps on the training images (one scale, no flip: as the online labels see them)
        f'{p}_maps': dict(one_scale, generator=dict(type='GETAMCAM', start_layer=6)),
        f'eval_{p}_maps': dict(type='EvaluateLabels', cams=f'{p}_maps', threshold=0.25),
        f'{p}_rollout_maps': dict(one_scale, generator=dict(type='AttentionRolloutCAM')),
        f'eval_{p}_rollout_maps': dict(type='EvaluateLabels', cams=f'{p}_rollout_maps',
                                       threshold=0.25),
        f'{p}_plain_cams': dict(one_scale, generator=dict(type='CAM')),
        f'eval_{p}_plain_cams': dict(type='EvaluateLabels', cams=f'{p}_plain_cams',
                                     threshold=0.25),
        f'{p}_online_labels': dict(type='RefineLabels', cams=f'{p}_maps', workers=2,
                                   refiners=[dict(type='PAMRRefiner'),
                                             dict(type='GETAMOnlineLabels')]),
        f'eval_{p}_online_labels': dict(type='EvaluateLabels', labels=f'{p}_online_labels'),
        f'{p}_test': dict(type='TestSegmentor', checkpoint=p, split='val', workers=2,
                          crf=dict(type='DenseCRF', preset='getam')),
    }


def _pretrain(before, encoder, max_epochs):
    """The encoder pretrained on the 64 px ShapeCorpus (AdamW 1e-3, one-cycle)."""
    return dict(type='Pretrain', before=before, backbone=dict(encoder, img_size=64),
                corpus=dict(type='ShapeCorpus', generator=dict(image_size=64)),
                max_epochs=max_epochs, batch_size=64, optim_wrapper=_adamw)


getam_synthetic_stages = _getam_stages('getam', vit_tiny_encoder, _norm, _adamw)
#: the stand-ins' schedule: 20 epochs, the first 16 classification only (cls_fraction 0.8;
#: from scratch 8 and 4). The classification phase is the cheap one (an epoch about a third
#: of a joint-phase epoch); the hybrid's classifier reached 0.944 val mAP with 4 + 4 epochs,
#: 0.967 with 8 + 4 (RESULTS.md, session 11), and with 16 + 4 at the full rate 0.980, 0.953 on
#: another variant, where 8 + 4 at half the rate gave 0.903 (session 13).
_standin_schedule = dict(max_epochs=20, cls_fraction=0.8)
getam_pretrained_stages = dict(
    getam_pretrain=_pretrain('getam', vit_tiny_encoder, 5),
    **_getam_stages('getam', vit_tiny_encoder, _imagenet_norm, _adamw,
                    pretrained_from='getam_pretrain', **_standin_schedule))
getam_hybrid_pretrained_stages = dict(
    getam_hybrid_pretrain=_pretrain('getam_hybrid', vit_hybrid_encoder, 5),
    **_getam_stages('getam_hybrid', vit_hybrid_encoder, _imagenet_norm, _adamw,
                    pretrained_from='getam_hybrid_pretrain', **_standin_schedule))
