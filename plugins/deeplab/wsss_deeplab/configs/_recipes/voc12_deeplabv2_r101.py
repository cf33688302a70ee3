# Fragment (not run alone): deeplab-pytorch's DeepLab v2 R101 on VOC 2012, stages deeplab + test.
# Included through  _base_ = ['deeplab::_recipes/voc12_deeplabv2_r101.py'] ; the including config
# sets what differs by stage name, e.g.
#   stages = dict(deeplab=dict(labels='labels', after='eval_labels'), test=dict(after='deeplab'))
# (``labels`` is the pseudo-label stage, or None for the ground truth; ``after`` places the two
# stages behind the config's own, since a base's stages come first).  A second copy of a stage
# under another name: ``dict(_base_.stages.deeplab, labels=...)``.  A ``model`` that replaces
# the recipe's network rather than changing some of its keys needs ``_delete_=True`` (mmengine
# merges dicts key by key).
#
# The recipe of kazuto1011/deeplab-pytorch (docs/methods/deeplab.md#4-the-reference-recipe):
# DeepLab v2 ResNet-101 (output stride 8, frozen BN, Caffe BGR input, COCO-initialised: the
# item deeplabv2-r101-coco), ASPP rates 6/12/18/24, MSC 0.5/0.75 (max fusion); train_aug,
# 20000 updates of 5 x 2 (iter_size) crops of 321 over scales 0.5..1.5 with flips, SGD lr
# 2.5e-4 (x10 / x20 on the ASPP head), momentum 0.9, weight decay 5e-4, poly 0.9 recomputed
# every 10 updates.  Test on val, one scale, no flip, dense CRF (deeplab preset), ``miou`` as
# deeplab-pytorch computes it: the mean over the classes present in the ground truth
# (``miou_convention='gt_present'``, not hashed).  Published: 76.65 / 77.93 mIoU (without /
# with CRF) trained on the train_aug ground truth.
#
# The CRF sees the image deeplab-pytorch's ``main.py crf`` passes: the mean-subtracted BGR
# image cast to uint8 with wrap-around (``image='mean_subtracted_bgr'``), the quirk behind its
# published CRF figures, which the paper-named configs reproduce.  Their ``_fixed`` variants set
# crf=dict(type='DenseCRF', preset='deeplab', image='raw_rgb').
stages = dict(
    deeplab=dict(
        type='TrainSegmentor', train_split='train_aug',
        model=dict(type='DeepLabV2', num_classes=21,
                   backbone=dict(type='DeepLabResNet', depth=101, output_stride=8,
                                 stride_in_1x1=True, norm='frozen'),
                   rates=(6, 12, 18, 24), msc_scales=(0.5, 0.75), input_style='caffe',
                   init_checkpoint='item:deeplabv2-r101-coco'),
        max_iters=20000, batch_size=5, iter_size=2, lr=2.5e-4, momentum=0.9,
        weight_decay=5e-4, power=0.9, lr_interval=10, crop_size=321,
        scales=(0.5, 0.75, 1.0, 1.25, 1.5), flip=True, checkpoint_interval=5000,
        log_interval=100, num_workers=4),
    test=dict(
        type='TestSegmentor', checkpoint='deeplab', split='val', scales=(1.0,), flip=False,
        crf=dict(type='DenseCRF', preset='deeplab', image='mean_subtracted_bgr'), workers=8,
        miou_convention='gt_present'),
)
