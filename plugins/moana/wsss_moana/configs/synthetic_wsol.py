# MoANA vs plain ResNet-50 for WSOL on SyntheticShapes, CPU; needs no files.
# MoANA for WSOL on SyntheticShapes, CPU: ResNet-50 with and without the MoANA block (WSOL
# calibration X (1 + M)), measured in the same run, each evaluated in both WSOL modes.
#
#   data: the single-class SyntheticShapes images (1313 train / 221 val of the 3000 / 500 at
#   seed 0) with boxes = the bounding boxes of the object components (SyntheticShapesWSOL)
#   wsss-run moana::synthetic_wsol.py             (work_dirs/moana_synthetic_wsol)
#
# Differences from the reference recipe (moana::cub_resnet50_wsol.py), all for a CPU run from
# scratch: no ImageNet weights (nothing on disk), so AdamW 1e-3 + one-cycle with one lr for
# all parameters instead of SGD 0.002 / 0.02 + steps, and a Xavier-initialised classifier
# (with the reference's Kaiming fan-out init the loss stayed near 12 for two epochs in a first
# attempt; chance level is 1.8 for 6 classes); 6 epochs of batch 32 on 96 px images (flip + 8 px translation)
# instead of 20 epochs of 256 x 256 -> 224 crops; ResNet-50 at output stride 16 (layer4
# stride 1; 6 x 6 maps here) instead of 8: a step at stride 8 costs 3x more on this CPU
# (3.7 s vs 1.3 s per batch of 32 at 96 px, 2 threads); evaluation at the images' own 96 px
# instead of 224.  Otherwise the reference's network: torchvision ResNet-50, the block after
# layer4, a biased 1x1 classifier, cross-entropy; CAM = the raw biased map of the ground-truth
# class.
seed = 0
work_dir = 'work_dirs/moana_synthetic_wsol'
plugins = ['moana']

data = dict(type='SyntheticShapesWSOL',
            generator=dict(image_size=96, num_classes=6, seed=0, num_train=3000, num_val=500))

norm = dict(type='NormalizeImages', mean=(0.45, 0.45, 0.45), std=(0.25, 0.25, 0.25))


def _classifier(enabled):
    return dict(type='MoANAClassifier', loss='cross_entropy', cam_bias=True, init='xavier',
                channels_last=True, data_preprocessor=norm,
                backbone=dict(type='WithMoANA', enabled=enabled, moana=dict(preset='wsol'),
                              backbone=dict(type='TorchvisionResNet', output_stride=16)))


def _arm(prefix, enabled):
    return [
        dict(type='TrainClassifier', name=f'{prefix}_classify', model=_classifier(enabled),
             max_epochs=6, batch_size=32, val_split=None, drop_last=True,
             optim_wrapper=dict(type='OptimWrapper',
                                optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4))),
        dict(type='EvaluateWSOL', name=f'{prefix}_wsol', source=f'{prefix}_classify',
             split='val', mode='standard', generator=dict(type='CAM', relu=False),
             image_size=96),
        dict(type='EvaluateWSOL', name=f'{prefix}_wsol_moana_compat',
             source=f'{prefix}_classify', split='val', mode='moana-compat',
             generator=dict(type='CAM', relu=False), image_size=96),
    ]


stages = {s['name']: s for s in _arm('base', False) + _arm('moana', True)}
