# MoANA WSOL on ILSVRC; needs items ilsvrc-wsol (images by hand), torchvision-resnet50.
# MoANA WSOL on ILSVRC (ImageNet-1k, wsolevaluation metadata layout: train = ImageNet train,
# val = ImageNetV2, test = ImageNet val), ResNet-50 + MoANA, the settings of the released
# trainer (docs/methods/moana.md#5-training-settings; the release's
# Localization/configs/config.json): batch 256, 20 epochs.
#
#   wsss-prepare --for moana::ilsvrc_resnet50_wsol.py && wsss-run moana::ilsvrc_resnet50_wsol.py
#
# Data and weights (items; `wsss-prepare --for` gets them): ilsvrc-wsol (ImageNet-1k with
# wsolevaluation's metadata, under $WSSS_DATA/wsol: dataset/ILSVRC/{train,val}/...,
# metadata/ILSVRC/{train,val,test}/*.txt; this config reads train and test) and
# torchvision-resnet50 (ImageNet ResNet-50).  ImageNet's images are downloaded by hand
# (register at image-net.org: ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar), then
#   wsss-prepare ilsvrc-wsol --from DIR        (the folder holding both tars)
# wsss-run downloads nothing; wsss-prepare does.
_base_ = ['./_recipes/wsol_resnet50.py']
work_dir = 'work_dirs/moana_ilsvrc_resnet50_wsol'

data = dict(type='WSOLMetadata', data_root='item:ilsvrc-wsol', name='ILSVRC', num_classes=1000)

stages = dict(
    classify=dict(type='TrainClassifier', model={{_base_.model}}, max_epochs=20,
                  batch_size=256, num_workers=8, train_split='train', val_split=None,
                  drop_last=True,
                  pipeline={{_base_.train_pipeline}}, optim_wrapper={{_base_.optim_wrapper}},
                  param_scheduler={{_base_.param_scheduler}}),
    wsol=dict(type='EvaluateWSOL', source='classify', split='test', mode='standard',
              generator=dict(type='CAM', relu=False), image_size=224),
    wsol_moana_compat=dict(type='EvaluateWSOL', source='classify', split='test',
                           mode='moana-compat', generator=dict(type='CAM', relu=False),
                           image_size=224),
)
