# Base of the MoANA WSOL configs (not run alone): ResNet-50 + MoANA, trainer, WSOL eval.
# Shared part of the MoANA WSOL configs: ResNet-50 at output stride 8 with the MoANA block at
# the end of layer4, the reference trainer's settings (docs/methods/moana.md#5-training-settings)
# and the WSOL evaluation in both modes (docs/methods/moana.md#6-wsol-evaluation).  The dataset
# configs set ``data``, ``num_classes`` and the batch size.
seed = 0
plugins = ['moana']

resnet50_weights = 'item:torchvision-resnet50'   # torchvision ImageNet weights (an item)

model = dict(
    type='MoANAClassifier', loss='cross_entropy', cam_bias=True, init='kaiming',
    backbone=dict(type='WithMoANA', moana=dict(preset='wsol'),
                  backbone=dict(type='TorchvisionResNet', output_stride=8,
                                pretrained=resnet50_weights)))

train_pipeline = [dict(type='Resize', size=(256, 256), interpolation='bilinear'),
                  dict(type='RandomPadCrop', size=224),
                  dict(type='RandomHorizontalFlip'),
                  dict(type='PackInputs', keys=('img', 'labels'))]

# SGD 0.002 for the backbone, x10 (0.02) for the MoANA block and the classifier
# (``layer_optim: true``); step decay at epochs 5 / 10 / 15; 20 epochs; no validation.
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.002, momentum=0.9, weight_decay=5e-4),
                     paramwise_cfg=dict(custom_keys={'backbone.moana': dict(lr_mult=10.0),
                                                     'classifier': dict(lr_mult=10.0)}))
param_scheduler = [dict(type='MultiStepLR', milestones=[5, 10, 15], gamma=0.1, by_epoch=True)]

