# The template's config: the baseline classifier and CAMs on SyntheticShapes, then pseudo labels
# by MarginLabels next to the plain threshold, each evaluated.  CPU, about a minute.
# Run: wsss-run template::synthetic_margin.py
seed = 0
work_dir = 'work_dirs/template_margin'

data = dict(type='SyntheticShapes',
            generator=dict(image_size=64, num_classes=4, seed=0, num_train=400, num_val=100))

stages = [
    dict(type='TrainClassifier', name='classify', max_epochs=4, batch_size=32,
         model=dict(type='CAMClassifier', backbone=dict(type='SmallResNet',
                                                        widths=(16, 32, 64, 64)))),
    dict(type='MakeCAMs', name='cams', source='classify', scales=(1.0, 0.5), flip=True),
    dict(type='RefineLabels', name='labels_threshold', cams='cams',
         refiners=[dict(type='BackgroundThreshold', threshold=0.25)]),
    dict(type='RefineLabels', name='labels_margin', cams='cams',
         refiners=[dict(type='MarginLabels', threshold=0.25, margin=0.1)]),
    dict(type='EvaluateLabels', name='eval_threshold', labels='labels_threshold'),
    dict(type='EvaluateLabels', name='eval_margin', labels='labels_margin'),
]
