# MoANA WSOL on CUB-200-2011; needs items cub200-wsol, torchvision-resnet50.
# MoANA WSOL on CUB-200-2011 (wsolevaluation metadata layout), ResNet-50 + MoANA, the
# reference trainer's settings (docs/methods/moana.md#5-training-settings; the repository
# ships ILSVRC's only, so the batch size here is wsolevaluation's CUB default, 32).
#
#   wsss-prepare --for moana::cub_resnet50_wsol.py && wsss-run moana::cub_resnet50_wsol.py
#
# Data and weights (items; `wsss-prepare --for` gets them): cub200-wsol (CUB-200-2011 with
# wsolevaluation's metadata, under $WSSS_DATA/wsol: dataset/CUB/<class folder>/<image>.jpg,
# metadata/CUB/{train,val,test}/*.txt) and torchvision-resnet50 (ImageNet ResNet-50).
# wsss-run downloads nothing; wsss-prepare does.
#
# The released trainer builds the classifier with 1000 outputs even for CUB; this uses 200.
_base_ = ['./_recipes/wsol_resnet50.py']
work_dir = 'work_dirs/moana_cub_resnet50_wsol'

data = dict(type='WSOLMetadata', data_root='item:cub200-wsol', name='CUB', num_classes=200)

stages = dict(
    classify=dict(type='TrainClassifier', model={{_base_.model}}, max_epochs=20,
                  batch_size=32, num_workers=4, train_split='train', val_split=None,
                  drop_last=True,
                  pipeline={{_base_.train_pipeline}}, optim_wrapper={{_base_.optim_wrapper}},
                  param_scheduler={{_base_.param_scheduler}}),
    wsol=dict(type='EvaluateWSOL', source='classify', split='test', mode='standard',
              generator=dict(type='CAM', relu=False), image_size=224),
    wsol_moana_compat=dict(type='EvaluateWSOL', source='classify', split='test',
                           mode='moana-compat', generator=dict(type='CAM', relu=False),
                           image_size=224),
)
