# The quickstart's CAM labels -> DeepLab v2 on SyntheticShapes, CPU; needs no files.
# WSSS end to end on SyntheticShapes, CPU: the quickstart's CAM pseudo labels (saliency
# fusion), then DeepLab v2 (ASPP + MSC) trained on them and tested on the val images with the
# dense CRF.  Shares the quickstart's stage names and settings, so pointed at the
# quickstart's work dir it reuses the finished classify / cams / labels_saliency stages:
#   wsss-run deeplab::synthetic.py --work-dir work_dirs/quickstart
# Run alone: wsss-run deeplab::synthetic.py   (work_dirs/deeplab_synthetic)
# The DeepLab stages are the recipe deeplab::_recipes/synthetic.py: the core's SmallResNet (output stride 8,
# from scratch: no weights on disk) with ASPP rates scaled to its 12x12 feature maps, AdamW
# (SGD at 0.02 had barely left the class prior after 1000 iterations from scratch), no
# x10 / x20 head multipliers, poly 0.9, 1500 updates of 16 crops; the reference ResNet-101
# recipe is deeplab::voc12_deeplabv2_r101.py.
_base_ = ['deeplab::_recipes/synthetic.py']
seed = 0
work_dir = 'work_dirs/deeplab_synthetic'
plugins = ['deeplab']

data = dict(
    type='SyntheticShapes',
    generator=dict(image_size=96, num_classes=6, seed=0, num_train=3000, num_val=500),
)

stages = dict(
    # --- pseudo labels: exactly the quickstart's stages ---
    classify=dict(type='TrainClassifier',
                  model=dict(type='CAMClassifier',
                             backbone=dict(type='SmallResNet'), channels_last=True,
                             data_preprocessor=dict(type='NormalizeImages', mean=(0.45, 0.45, 0.45),
                                                    std=(0.25, 0.25, 0.25))),
                  max_epochs=12, batch_size=64, val_split='val'),
    cams=dict(type='MakeCAMs', source='classify', split='train',
              scales=(1.0, 0.5, 1.5), flip=True),
    labels_saliency=dict(type='RefineLabels', cams='cams',
                         refiners=[dict(type='SaliencyFusion', threshold=0.5)]),
    eval_labels_saliency=dict(type='EvaluateLabels', labels='labels_saliency'),
    # --- the segmentation stages: the recipe's, on these labels ---
    deeplab=dict(labels='labels_saliency', after='eval_labels_saliency'),
    test=dict(after='deeplab'),
)
