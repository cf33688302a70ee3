# OAA and OAA+ next to the core baseline on SyntheticShapes, CPU, ~30 min; needs no files.
# OAA end to end on SyntheticShapes, CPU, next to the core's baseline measured in the same run.
#
#   baseline (the quickstart's stages): CAM classifier -> multi-scale CAMs -> saliency fusion
#       -> DeepLab v2 -> val mIoU
#   OAA: OAA classifier + online accumulation -> final-epoch CAM | accumulated maps
#       -> integral attention model (OAA+) -> IAM maps -> OAA proxy labels -> DeepLab v2
#
#   wsss-run oaa::synthetic.py                  (work_dirs/oaa_synthetic, ~30 min on 2 cores)
#   wsss-run oaa::synthetic.py --work-dir work_dirs/quickstart   (reuses the quickstart's stages)
#
# Differences from the VOC recipe (oaa::voc12_vgg16.py), all for a CPU run from scratch: the
# backbone is the core's SmallResNet (no weights on disk) with a 128-channel head, AdamW with
# warm-up + cosine instead of SGD x1/x2/x10/x20 + step (made for fine-tuning ImageNet VGG16),
# batch 64 instead of 1 x 5, 12 epochs instead of 15.  The accumulation rule, the IAM loss and
# the proxy-label constants are the reference's.  Training images keep a fixed geometry (no
# flip / crop): accumulation fuses maps of the same image across epochs pixel by pixel.
_base_ = ['deeplab::_recipes/synthetic.py']
seed = 0
work_dir = 'work_dirs/oaa_synthetic'
plugins = ['deeplab', 'oaa']

data = dict(
    type='SyntheticShapes',
    generator=dict(image_size=96, num_classes=6, seed=0, num_train=3000, num_val=500),
)

norm = dict(type='NormalizeImages', mean=(0.45, 0.45, 0.45), std=(0.25, 0.25, 0.25))
oaa_model = dict(backbone=dict(type='SmallResNet'), head_channels=128, channels_last=True,
                 data_preprocessor=norm)
fixed_geometry = [dict(type='PackInputs', keys=('img', 'labels'))]

# Configs built on this one (nsrom::synthetic.py) append their stages to this config's
# `stages` dict by name and reuse the finished stages of the same work dir.
# --- the core's baseline: exactly the quickstart's stages, then DeepLab ---
classify = dict(type='TrainClassifier', name='classify',
                model=dict(type='CAMClassifier', backbone=dict(type='SmallResNet'),
                           channels_last=True, data_preprocessor=norm),
                max_epochs=12, batch_size=64, val_split='val')
cams = dict(type='MakeCAMs', name='cams', source='classify', split='train',
            scales=(1.0, 0.5, 1.5), flip=True)
eval_cams = dict(type='EvaluateLabels', name='eval_cams', cams='cams', threshold=0.25)
labels_saliency = dict(type='RefineLabels', name='labels_saliency', cams='cams',
                       refiners=[dict(type='SaliencyFusion', threshold=0.5)])
eval_labels_saliency = dict(type='EvaluateLabels', name='eval_labels_saliency',
                            labels='labels_saliency')
# the DeepLab recipe's stages (deeplab::_recipes/synthetic.py), on the saliency-fused labels
deeplab = dict(name='deeplab', labels='labels_saliency', after='eval_labels_saliency')
test = dict(name='test', after='deeplab')

# --- OAA ---
oaa_classify = dict(type='TrainClassifier', name='oaa_classify',
                    model=dict(type='OAAClassifier', **oaa_model), pipeline=fixed_geometry,
                    max_epochs=12, batch_size=64, val_split='val',
                    custom_hooks=[dict(type='OAAAccumulationHook', start_epoch=1,
                                       filter='topk')])
# the final-epoch CAM, as the reference's test.py makes it (one scale, no flip)
oaa_cams = dict(type='MakeCAMs', name='oaa_cams', source='oaa_classify', split='train',
                scales=(1.0,), flip=False)
eval_oaa_cams = dict(type='EvaluateLabels', name='eval_oaa_cams', cams='oaa_cams',
                     threshold=0.25)
# the accumulated maps at image size (bicubic + min-max, the reference's res.py)
oaa_accumulated = dict(type='ExportAttention', name='oaa_accumulated', source='oaa_classify',
                       split='train')
eval_oaa_accumulated = dict(type='EvaluateLabels', name='eval_oaa_accumulated',
                            cams='oaa_accumulated', threshold=0.25)
oaa_labels = dict(type='RefineLabels', name='oaa_labels', cams='oaa_accumulated',
                  refiners=[dict(type='OAAProxyLabels')])
eval_oaa_labels = dict(type='EvaluateLabels', name='eval_oaa_labels', labels='oaa_labels')
# OAA+: the integral attention model trained on the accumulated maps
oaa_iam = dict(type='TrainIntegralAttention', name='oaa_iam', targets='oaa_classify',
               model=dict(type='IntegralAttentionModel', loss_form='pytorch', **oaa_model),
               max_epochs=12, batch_size=64)
oaa_iam_cams = dict(type='MakeCAMs', name='oaa_iam_cams', source='oaa_iam', split='train',
                    scales=(1.0,), flip=False)
eval_oaa_iam_cams = dict(type='EvaluateLabels', name='eval_oaa_iam_cams', cams='oaa_iam_cams',
                         threshold=0.25)
oaa_iam_labels = dict(type='RefineLabels', name='oaa_iam_labels', cams='oaa_iam_cams',
                      refiners=[dict(type='OAAProxyLabels')])
eval_oaa_iam_labels = dict(type='EvaluateLabels', name='eval_oaa_iam_labels',
                           labels='oaa_iam_labels')
# DeepLab on the OAA proxy labels (the oaa::voc12_vgg16.py route)
oaa_deeplab = dict(_base_.stages.deeplab, name='oaa_deeplab', labels='oaa_labels')
oaa_test = dict(_base_.stages.test, name='oaa_test', checkpoint='oaa_deeplab')

# Ablation: the same classifier (same seed, same data order, so the same weights at every
# step) accumulating only from epoch 6 on.  Trained from scratch, the first epochs' maps are
# diffuse and the element-wise max keeps them: this shows how much of the accumulated maps'
# background activation comes from those epochs (see RESULTS.md).
oaa_late_classify = dict(oaa_classify, name='oaa_late_classify',
                         custom_hooks=[dict(type='OAAAccumulationHook', start_epoch=6,
                                            filter='topk')])
oaa_late_accumulated = dict(type='ExportAttention', name='oaa_late_accumulated',
                            source='oaa_late_classify', split='train')
eval_oaa_late_accumulated = dict(type='EvaluateLabels', name='eval_oaa_late_accumulated',
                                 cams='oaa_late_accumulated', threshold=0.25)

stages = dict(
    classify=classify, cams=cams, eval_cams=eval_cams, labels_saliency=labels_saliency,
    eval_labels_saliency=eval_labels_saliency, deeplab=deeplab, test=test,
    oaa_classify=oaa_classify, oaa_cams=oaa_cams, eval_oaa_cams=eval_oaa_cams,
    oaa_accumulated=oaa_accumulated, eval_oaa_accumulated=eval_oaa_accumulated,
    oaa_labels=oaa_labels, eval_oaa_labels=eval_oaa_labels, oaa_iam=oaa_iam,
    oaa_iam_cams=oaa_iam_cams, eval_oaa_iam_cams=eval_oaa_iam_cams,
    oaa_iam_labels=oaa_iam_labels, eval_oaa_iam_labels=eval_oaa_iam_labels,
    oaa_deeplab=oaa_deeplab, oaa_test=oaa_test, oaa_late_classify=oaa_late_classify,
    oaa_late_accumulated=oaa_late_accumulated,
    eval_oaa_late_accumulated=eval_oaa_late_accumulated)
