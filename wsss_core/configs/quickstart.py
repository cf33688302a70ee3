# The quickstart: baseline CAM pipeline on SyntheticShapes, CPU, a few minutes; needs no files.
#   classify -> CAMs (multi-scale + flip) -> pseudo labels (threshold; saliency fusion)
#   -> evaluation of each -> a PNG sheet of a few images.
# Run: wsss-run            (or: wsss-run quickstart, or: wsss-run core::quickstart.py)
seed = 0
work_dir = 'work_dirs/quickstart'

data = dict(
    type='SyntheticShapes',
    generator=dict(image_size=96, num_classes=6, seed=0, num_train=3000, num_val=500),
)

stages = dict(
    classify=dict(type='TrainClassifier',
                  model=dict(type='CAMClassifier',
                             backbone=dict(type='SmallResNet'), channels_last=True,
                             data_preprocessor=dict(type='NormalizeImages', mean=(0.45, 0.45, 0.45),
                                                    std=(0.25, 0.25, 0.25))),
                  # ~550 steps of batch 64 are needed before the texture detectors form
                  max_epochs=12, batch_size=64, val_split='val'),
    # The stage's default scales are 1.0/0.5/1.5/2.0; 2.0 alone costs half of the time and
    # did not help on SyntheticShapes, so the quickstart leaves it out.
    cams=dict(type='MakeCAMs', source='classify', split='train',
              scales=(1.0, 0.5, 1.5), flip=True),
    eval_cams=dict(type='EvaluateLabels', cams='cams', threshold=0.25),
    labels_threshold=dict(type='RefineLabels', cams='cams',
                          refiners=[dict(type='BackgroundThreshold', threshold=0.25)]),
    eval_labels_threshold=dict(type='EvaluateLabels', labels='labels_threshold'),
    labels_saliency=dict(type='RefineLabels', cams='cams',
                         refiners=[dict(type='SaliencyFusion', threshold=0.5)]),
    eval_labels_saliency=dict(type='EvaluateLabels', labels='labels_saliency'),
    sheet=dict(type='RenderSheet', cams='cams',
               labels=['labels_threshold', 'labels_saliency'], num_images=6),
)
