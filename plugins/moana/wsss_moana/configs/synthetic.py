# MoANA vs plain CAMs, IRN route down to DeepLab, on SyntheticShapes, CPU; needs no files.
# MoANA for WSSS on SyntheticShapes, CPU: the IRN route with and without the MoANA block,
# both measured in the same run (same seed, data, schedule; the only difference is the block).
#
#   classifier (SmallResNet [+ MoANA, WSSS calibration 0.35 / 0.65]) -> multi-scale CAMs
#   -> IR labels (fg 0.30 / bg 0.05 + label CRF) -> inter-pixel relation network on the
#   classifier's trained backbone -> random walk (beta 10, 2^4 steps, radius 5, bg 0.25)
#   -> DeepLab v2 -> val mIoU
#
#   wsss-run moana::synthetic.py                  (work_dirs/moana_synthetic)
#
# Differences from the VOC recipe (moana::voc12_resnet50_irn.py), all for a CPU run from
# scratch: the backbone is the core's SmallResNet (192 channels at stride 8, no weights on disk)
# instead of an ImageNet ResNet-50 at stride 16, so nothing is frozen; AdamW 2e-3 + one-cycle
# instead of SGD 0.1 / 1.0 + poly; 12 epochs of batch 64 instead of 5 of 16; no crop (96 px
# images); the IRN backbone is the trained classifier's (backbone_from), since a frozen
# backbone with random weights would be useless here (the VOC config uses ImageNet weights);
# IRN crops of 96 with radius 10 and the other IRN / random-walk constants as the reference,
# except the walk's length: 2^4 = 16 steps instead of 2^8 = 256.  A walk spreads over about
# sqrt(steps) cells; the stride-4 grid here is 24 x 24 cells against about 125 x 94 on VOC, so
# 256 x (24 * 24) / (125 * 94) = 12.5 steps keep the reference's reach relative to the image
# (16 is the nearest power of two).  With 256 steps the labels spread over the whole image
# (RESULTS.md has the measured effect).
_base_ = ['deeplab::_recipes/synthetic.py']
seed = 0
work_dir = 'work_dirs/moana_synthetic'
plugins = ['deeplab', 'moana']

data = dict(
    type='SyntheticShapes',
    generator=dict(image_size=96, num_classes=6, seed=0, num_train=3000, num_val=500),
)

norm = dict(type='NormalizeImages', mean=(0.45, 0.45, 0.45), std=(0.25, 0.25, 0.25))


def _backbone(enabled, out_indices=None):
    return dict(type='WithMoANA', enabled=enabled, moana=dict(preset='wsss'),
                backbone=dict(type='SmallResNet', out_indices=out_indices))


def _classifier(enabled):
    return dict(type='MoANAClassifier', backbone=_backbone(enabled), init='xavier',
                loss='multilabel_soft_margin', cam_bias=False, data_preprocessor=norm)


def _irn(enabled):
    return dict(type='InterPixelRelationNet', backbone=_backbone(enabled, (0, 1, 2, 3, 4)),
                radius=10, data_preprocessor=norm)


def _arm(prefix, enabled):
    """The IRN route's stages, named ``<prefix>_<stage>``."""
    return [
        dict(type='TrainClassifier', name=f'{prefix}_classify', model=_classifier(enabled),
             max_epochs=12, batch_size=64, val_split='val'),
        dict(type='MakeCAMs', name=f'{prefix}_cams', source=f'{prefix}_classify',
             split='train', scales=(1.0, 0.5, 1.5), flip=True),
        dict(type='EvaluateLabels', name=f'eval_{prefix}_cams', cams=f'{prefix}_cams',
             threshold=0.25),
        dict(type='RefineLabels', name=f'{prefix}_ir_labels', cams=f'{prefix}_cams', workers=2,
             refiners=[dict(type='IRLabels', fg_threshold=0.30, bg_threshold=0.05)]),
        dict(type='EvaluateLabels', name=f'eval_{prefix}_ir_labels', labels=f'{prefix}_ir_labels'),
        dict(type='TrainIRN', name=f'{prefix}_irn', labels=f'{prefix}_ir_labels',
             model=_irn(enabled), backbone_from=f'{prefix}_classify', crop=96,
             rescale=(0.5, 1.5), batch_size=32, max_epochs=3),
        dict(type='RandomWalkLabels', name=f'{prefix}_rw_labels', cams=f'{prefix}_cams',
             irn=f'{prefix}_irn', radius=5, beta=10, exp_times=4, bg_threshold=0.25),
        dict(type='EvaluateLabels', name=f'eval_{prefix}_rw_labels', labels=f'{prefix}_rw_labels'),
        # the DeepLab recipe's stages (deeplab::_recipes/synthetic.py), renamed
        dict(_base_.stages.deeplab, name=f'{prefix}_deeplab', labels=f'{prefix}_rw_labels'),
        dict(_base_.stages.test, name=f'{prefix}_test', checkpoint=f'{prefix}_deeplab'),
    ]


# the recipe's own deeplab / test are removed: each arm has its copies
stages = dict(deeplab=None, test=None,
              **{s['name']: s for s in _arm('base', False) + _arm('moana', True)})
