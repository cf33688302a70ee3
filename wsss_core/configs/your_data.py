# Baseline CAM pipeline on your own images, no masks; needs a folder of images + a CSV/JSON of tags.
#   classify -> CAMs (multi-scale + flip) of every image -> pseudo labels (background threshold;
#   saliency fusion with OpenCV's spectral-residual saliency) -> a PNG sheet; then report.html.
# Run: wsss-run core::your_data.py --cfg-options data.data_root=my_data/images \
#          data.labels=my_data/tags.csv
# The tag file formats and the rules (ids, classes, splits): wsss_core/datasets/tagged_folder.py
# (TaggedImageFolder).  With masks for evaluation: core::your_data_with_masks.py.
# Switches (--cfg-options):
#   saliency maps of your own:   data.saliency_dir=my_data/saliency stages.labels_saliency.refiners.0.source=None
#   a classifier mAP:            data.val_fraction=0.1 stages.classify.val_split=val (or a split column)
#   an ImageNet-pretrained backbone (far better CAMs on photos than this one, trained from
#   scratch as in the quickstart), after `wsss-prepare torchvision-resnet50`:
#     stages.classify.model.backbone.type=TorchvisionResNet \
#     stages.classify.model.backbone.pretrained=item:torchvision-resnet50
seed = 0
work_dir = 'work_dirs/your_data'

data = dict(type='TaggedImageFolder', data_root='my_data/images', labels='my_data/tags.csv')

# the stages; core::your_data_with_masks.py inserts its evaluations among them by name
# The classifier sees every image resized to 224 x 224 (its stage's `data` option), so images
# of any size batch together; the CAM and label stages keep each image's own size.
classify = dict(
    type='TrainClassifier', name='classify',
    model=dict(type='CAMClassifier', backbone=dict(type='SmallResNet'), channels_last=True,
               data_preprocessor=dict(type='NormalizeImages')),   # ImageNet mean / std
    data=dict(resize=dict(size=(224, 224))),
    pipeline=[dict(type='RandomHorizontalFlip'), dict(type='RandomPadCrop', pad=28),
              dict(type='PackInputs', keys=('img', 'labels'))],
    max_epochs=12, batch_size=32, val_split=None)
# CAMs (and so pseudo labels) of every image of the tag file, whatever its split; each image
# is inferred at short side 224 (the classifier's scale), the maps at its own size.
cams = dict(type='MakeCAMs', name='cams', source='classify', split='all',
            scales=(1.0, 0.5, 1.5), flip=True, resize=dict(short_side=224))
labels_threshold = dict(type='RefineLabels', name='labels_threshold', cams='cams',
                        refiners=[dict(type='BackgroundThreshold', threshold=0.25)])
labels_saliency = dict(type='RefineLabels', name='labels_saliency', cams='cams',
                       refiners=[dict(type='SaliencyFusion', threshold=0.5,
                                      source=dict(type='SpectralResidualSaliency'))])
sheet = dict(type='RenderSheet', name='sheet', cams='cams',
             labels=['labels_threshold', 'labels_saliency'], num_images=6)

stages = dict(
    classify=classify, cams=cams, labels_threshold=labels_threshold,
    labels_saliency=labels_saliency, sheet=sheet)
