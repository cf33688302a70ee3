# GETAM with a tiny ViT from scratch on SyntheticShapes, CPU; needs no files.
# GETAM end to end on SyntheticShapes, CPU, with a tiny ViT from scratch.
#
#   TrainGETAM: classification phase (first half of the iterations), then the joint phase
#   (GETAM maps -> PAMR -> online pseudo labels -> split CE + saliency BCE + gated dense-CRF
#   loss + classification, lr x 0.1) -> the segmentation head, tested on val with square
#   resizes and the dense CRF (GETAM's preset).  Afterwards, on the training images with the
#   trained network: GETAM maps next to attention rollout and the plain CAM of the class head
#   (the same ViT), and the online pseudo labels made offline from the GETAM maps.
#
#   wsss-run getam::synthetic.py                (work_dirs/getam_synthetic)
#
# Differences from the VOC recipe (getam::voc12_vitb_hybrid.py), all for a CPU run from
# scratch: a ViT-Tiny-sized encoder (embed 192, 12 blocks, 3 heads; no weights on disk) and a
# 64-wide decoder instead of ViT-B/16-hybrid and 256; 96 px crops (the images' size; long
# side in [86, 110], the reference's [230, 292] for 256 scaled) instead of 256; batch 16 for
# 8 epochs (1500 iterations; a joint step takes about 2.3 s on one CPU core) instead of 4 for
# 20; AdamW 1e-3 (the usual optimiser for a ViT trained from scratch; the reference's SGD 0.04
# fine-tunes ImageNet weights) under GETAM's own schedule (poly 0.9, x0.1 in the joint
# phase); test sizes 64 / 96 / 160 instead of 256 / 320 / 480 (about the same ratios to the
# training crop, multiples of 32).  The GETAM map (last six of twelve blocks), PAMR, the
# online-label constants and the losses are the reference's; the saliency loss uses the
# intended target (the default).
seed = 0
work_dir = 'work_dirs/getam_synthetic'
plugins = ['deeplab', 'getam']

data = dict(
    type='SyntheticShapes',
    generator=dict(image_size=96, num_classes=6, seed=0, num_train=3000, num_val=500),
)

norm = dict(type='NormalizeImages', mean=(0.45, 0.45, 0.45), std=(0.25, 0.25, 0.25))
model = dict(type='GETAMNet', features=64, test_sizes=(64, 96, 160), data_preprocessor=norm,
             backbone=dict(type='GETAMViT', model_name='vit_tiny_patch16_224', img_size=96,
                           embed_dim=192, depth=12, num_heads=3))

stages = dict(
    getam=dict(type='TrainGETAM', model=model, max_epochs=8, batch_size=16, crop=96,
               long_side=(86, 110), val_split='val',
               optim_wrapper=dict(type='OptimWrapper',
                                  optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4))),
    # the maps on the training images (one scale, no flip: as the online labels see them)
    getam_maps=dict(type='MakeCAMs', source='getam', split='train',
                    generator=dict(type='GETAMCAM', start_layer=6), scales=(1.0,), flip=False),
    eval_getam_maps=dict(type='EvaluateLabels', cams='getam_maps', threshold=0.25),
    rollout_maps=dict(type='MakeCAMs', source='getam', split='train',
                      generator=dict(type='AttentionRolloutCAM'), scales=(1.0,), flip=False),
    eval_rollout_maps=dict(type='EvaluateLabels', cams='rollout_maps', threshold=0.25),
    plain_cams=dict(type='MakeCAMs', source='getam', split='train',
                    generator=dict(type='CAM'), scales=(1.0,), flip=False),
    eval_plain_cams=dict(type='EvaluateLabels', cams='plain_cams', threshold=0.25),
    online_labels=dict(type='RefineLabels', cams='getam_maps', workers=2,
                       refiners=[dict(type='PAMRRefiner'), dict(type='GETAMOnlineLabels')]),
    eval_online_labels=dict(type='EvaluateLabels', labels='online_labels'),
    test=dict(type='TestSegmentor', checkpoint='getam', split='val', workers=2,
              crf=dict(type='DenseCRF', preset='getam')),
)
