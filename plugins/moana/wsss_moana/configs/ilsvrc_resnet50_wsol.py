# MoANA WSOL on ILSVRC; needs data/wsol (wsolevaluation), weights/resnet50-19c8e357.pth.
# MoANA WSOL on ILSVRC (ImageNet-1k, wsolevaluation metadata layout: train = ImageNet train,
# val = ImageNetV2, test = ImageNet val), ResNet-50 + MoANA, the settings of the released
# trainer (docs/methods/moana.md#5-training-settings; the release's
# Localization/configs/config.json): batch 256, 20 epochs.
#
#   data/wsol/dataset/ILSVRC/{train,val,val2}/...
#   data/wsol/metadata/ILSVRC/{train,val,test}/{image_ids,class_labels,image_sizes,localization}.txt
#   weights/resnet50-19c8e357.pth
#   wsss-run moana::ilsvrc_resnet50_wsol.py
_base_ = ['./_wsol_resnet50.py']
work_dir = 'work_dirs/moana_ilsvrc_resnet50_wsol'

data = dict(type='WSOLMetadata', data_root='item:ilsvrc-wsol', name='ILSVRC', num_classes=1000)

stages = [
    dict(type='TrainClassifier', name='classify', model={{_base_.model}}, max_epochs=20,
         batch_size=256, num_workers=8, train_split='train', val_split=None, drop_last=True,
         pipeline={{_base_.train_pipeline}}, optim_wrapper={{_base_.optim_wrapper}},
         param_scheduler={{_base_.param_scheduler}}),
    dict(type='EvaluateWSOL', name='wsol', source='classify', split='test', mode='standard',
         generator=dict(type='CAM', relu=False), image_size=224),
    dict(type='EvaluateWSOL', name='wsol_moana_compat', source='classify', split='test',
         mode='moana-compat', generator=dict(type='CAM', relu=False), image_size=224),
]
