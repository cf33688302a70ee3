# A fragment (not a runnable config): GETAM's training stage of getam::synthetic.py switched to
# the ViT-Tiny-sized ViT pretrained on the ShapeCorpus.  getam::synthetic_pretrained.py merges
# `getam_pretrained_stages` into its `stages` by name.
#
#   getam_pretrain: the same ViT (embed 192, 12 blocks, 3 heads, patch 16) pretrained on the
#       ShapeCorpus (the offline stand-in for ImageNet, docs/pretraining.md) rendered at 64 px
#       (below the fine-tuning size, as ImageNet's 224 px is below VOC's crops; the position
#       embedding is resized from 4 x 4 to 6 x 6 tokens when loaded), 5 epochs, AdamW 1e-3
#       one-cycle; cached in $WSSS_CACHE/pretrained.
#   getam: starts from it (pretrained_from; GETAMViT takes the file as checkpoint=), with the
#       ImageNet normalisation the pretraining used and the fine-tuning structure of the
#       reference recipes: the pretrained ViT at a tenth of the new layers' rate (AdamW 1e-4
#       for the ViT, 1e-3 for the DPT decoder and the heads; GETAM's own schedule on top).
vit_tiny_standin = dict(type='GETAMViT', model_name='vit_tiny_patch16_224', img_size=64,
                        embed_dim=192, depth=12, num_heads=3)

getam_pretrained_stages = dict(
    getam_pretrain=dict(type='Pretrain', before='getam', backbone=vit_tiny_standin,
                        corpus=dict(type='ShapeCorpus', generator=dict(image_size=64)),
                        max_epochs=5, batch_size=64,
                        optim_wrapper=dict(type='OptimWrapper',
                                           optimizer=dict(type='AdamW', lr=1e-3,
                                                          weight_decay=1e-4))),
    getam=dict(pretrained_from='getam_pretrain',
               model=dict(data_preprocessor=dict(_delete_=True, type='NormalizeImages')),
               optim_wrapper=dict(paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))),
)

# The hybrid variant (getam::synthetic_hybrid_pretrained.py), as the reference's ViT-B/16
# hybrid: the same ViT-Tiny-sized encoder on a small ResNet stem (GroupNorm, one bottleneck
# per stage, 32 / 64 / 128 channels, stride 16), pretrained the same way for 4 epochs (it
# trains at about 0.8 of the plain ViT's speed at 64 px: bench/RESULTS.md).
vit_hybrid_standin = dict(vit_tiny_standin, model_name='vit_base_r50_s16_384',
                          hybrid_resnet=dict(layers=(1, 1, 1), channels=(32, 64, 128),
                                             stem_chs=32, num_groups=8))

getam_hybrid_pretrained_stages = dict(
    getam_hybrid_pretrain=dict(getam_pretrained_stages['getam_pretrain'], before='getam',
                               backbone=vit_hybrid_standin, max_epochs=4),
    getam=dict(getam_pretrained_stages['getam'], pretrained_from='getam_hybrid_pretrain',
               model=dict(data_preprocessor=dict(_delete_=True, type='NormalizeImages'),
                          backbone=dict(vit_hybrid_standin, img_size=96))),
)
