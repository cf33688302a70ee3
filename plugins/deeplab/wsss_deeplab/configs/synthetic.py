# WSSS end to end on SyntheticShapes, CPU: the quickstart's CAM pseudo labels (saliency
# fusion), then DeepLab v2 (ASPP + MSC) trained on them and tested on the val images with the
# dense CRF.  Shares the quickstart's stage names and settings, so pointed at the
# quickstart's work dir it reuses the finished classify / cams / labels_saliency stages:
#   wsss-run deeplab::synthetic.py --work-dir work_dirs/quickstart
# Run alone: wsss-run deeplab::synthetic.py   (work_dirs/deeplab_synthetic)
# The backbone is the core's SmallResNet (output stride 8, from scratch: no weights on disk)
# and the ASPP rates are scaled to its 12x12 feature maps; the reference ResNet-101 recipe
# is deeplab::voc12_deeplabv2_r101.py.
seed = 0
work_dir = 'work_dirs/deeplab_synthetic'
plugins = ['deeplab']

data = dict(
    type='SyntheticShapes',
    generator=dict(image_size=96, num_classes=6, seed=0, num_train=3000, num_val=500),
)

stages = [
    # --- pseudo labels: exactly the quickstart's stages ---
    dict(type='TrainClassifier', name='classify',
         model=dict(type='CAMClassifier',
                    backbone=dict(type='SmallResNet'), channels_last=True,
                    data_preprocessor=dict(type='NormalizeImages', mean=(0.45, 0.45, 0.45),
                                           std=(0.25, 0.25, 0.25))),
         max_epochs=12, batch_size=64, val_split='val'),
    dict(type='MakeCAMs', name='cams', source='classify', split='train',
         scales=(1.0, 0.5, 1.5), flip=True),
    dict(type='RefineLabels', name='labels_saliency', cams='cams',
         refiners=[dict(type='SaliencyFusion', threshold=0.5)]),
    dict(type='EvaluateLabels', name='eval_labels_saliency', labels='labels_saliency'),
    # --- the segmentation stage ---
    dict(type='TrainSegmentor', name='deeplab', labels='labels_saliency',
         model=dict(type='DeepLabV2', backbone=dict(type='SmallResNet'), rates=(2, 4, 6, 8),
                    msc_scales=(0.5, 0.75),
                    data_preprocessor=dict(type='NormalizeImages', mean=(0.45, 0.45, 0.45),
                                           std=(0.25, 0.25, 0.25))),
         max_iters=1500, batch_size=16, crop_size=96, scales=(0.5, 0.75, 1.0, 1.25, 1.5),
         # from scratch (no weights on disk): AdamW as in the quickstart's classifier, and no
         # x10 / x20 head multipliers (they are for fine-tuning a pretrained backbone); SGD at
         # 0.02 had barely left the class prior after 1000 iterations.  Poly 0.9 schedule.
         optim_wrapper=dict(type='OptimWrapper',
                            optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4),
                            constructor='DeepLabOptimWrapperConstructor',
                            paramwise_cfg=dict(head_lr_mult=1.0, head_bias_lr_mult=1.0,
                                               head_bias_decay_mult=0.0)),
         checkpoint_interval=500, log_interval=50),
    dict(type='TestSegmentor', name='test', checkpoint='deeplab', split='val',
         crf=dict(type='DenseCRF', preset='deeplab', image='raw_rgb'), workers=2),
]
