# The template's config: the baseline classifier and CAMs on SyntheticShapes, then pseudo labels
# by MarginLabels next to the plain threshold, MarginLabels' labels without their specks
# (DropSmallRegions), each evaluated.  CPU, about a minute.
# Run: wsss-run template::synthetic_margin.py
seed = 0
work_dir = 'work_dirs/template_margin'

data = dict(type='SyntheticShapes',
            generator=dict(image_size=64, num_classes=4, seed=0, num_train=400, num_val=100))

# stages by name, in run order; a variant config (_base_ = ['template::synthetic_margin.py'])
# changes one with stages=dict(classify=dict(max_epochs=8)), adds one after a named stage with
# stages=dict(new=dict(type=..., after='cams')) and removes one with stages=dict(name=None)
stages = dict(
    classify=dict(type='TrainClassifier', max_epochs=4, batch_size=32,
                  model=dict(type='CAMClassifier', backbone=dict(type='SmallResNet',
                                                                 widths=(16, 32, 64, 64)))),
    cams=dict(type='MakeCAMs', source='classify', scales=(1.0, 0.5), flip=True),
    labels_threshold=dict(type='RefineLabels', cams='cams',
                          refiners=[dict(type='BackgroundThreshold', threshold=0.25)]),
    labels_margin=dict(type='RefineLabels', cams='cams',
                       refiners=[dict(type='MarginLabels', threshold=0.25, margin=0.1)]),
    labels_clean=dict(type='DropSmallRegions', labels='labels_margin', min_pixels=16),
    eval_threshold=dict(type='EvaluateLabels', labels='labels_threshold'),
    eval_margin=dict(type='EvaluateLabels', labels='labels_margin'),
    eval_clean=dict(type='EvaluateLabels', labels='labels_clean'),
)
