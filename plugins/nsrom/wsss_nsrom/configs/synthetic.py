# NSROM next to OAA and the core baseline on SyntheticShapes, CPU; needs no files.
# NSROM end to end on SyntheticShapes, CPU, next to OAA and the core baseline of the same run.
#
#   NSROM classifier (OAA's, with the GloRe graph-reasoning unit in the head) + accumulation
#   with NSROM's filter (skip a class whose sigmoid score is below 0.1) -> plain CAMs
#   -> OA-CAM integral model on the accumulated maps -> initial pseudo labels: OAA's
#   background extraction on the OA-CAMs, then potential object mining with the plain CAMs
#   -> DeepLab round 1 -> its CRF predictions on the training images -> non-salient region
#   masking -> DeepLab round 2 (same initial weights) -> val.
#
#   wsss-run nsrom::synthetic.py --work-dir work_dirs/oaa_synthetic   (after oaa::synthetic.py:
#       its baseline and OAA stages are reused, only the NSROM stages run)
#   wsss-run nsrom::synthetic.py          (everything, work_dirs/nsrom_synthetic)
#
# CPU differences from the VOC recipe (nsrom::voc12_vgg16_deeplabv2.py), as in
# oaa::synthetic.py: SmallResNet backbone from scratch, 128-channel head (16 graph nodes),
# AdamW + warm-up/cosine, batch 64, 12 epochs, images at their 96x96 size.
_base_ = ['oaa::synthetic.py']
work_dir = 'work_dirs/nsrom_synthetic'
plugins = ['deeplab', 'oaa', 'nsrom']

norm = dict(type='NormalizeImages', mean=(0.45, 0.45, 0.45), std=(0.25, 0.25, 0.25))

nsrom_model = dict(backbone=dict(type='SmallResNet'), head_channels=128, num_nodes=16,
                   channels_last=True, data_preprocessor=norm)

nsrom_classify = dict(
    type='TrainClassifier', name='nsrom_classify',
    model=dict(type='NSROMClassifier', **nsrom_model), pipeline={{_base_.fixed_geometry}},
    max_epochs=12, batch_size=64, val_split='val',
    custom_hooks=[dict(type='OAAAccumulationHook', start_epoch=1, filter=None,
                       score_filter=0.1)])
# the plain CAM of the classifier (potential object mining reads it)
nsrom_cams = dict(type='MakeCAMs', name='nsrom_cams', source='nsrom_classify', split='train',
                  scales=(1.0,), flip=False)
eval_nsrom_cams = dict(type='EvaluateLabels', name='eval_nsrom_cams', cams='nsrom_cams',
                       threshold=0.25)
nsrom_accumulated = dict(type='ExportAttention', name='nsrom_accumulated',
                         source='nsrom_classify', split='train')
eval_nsrom_accumulated = dict(type='EvaluateLabels', name='eval_nsrom_accumulated',
                              cams='nsrom_accumulated', threshold=0.25)
# OA-CAM: the integral model with the GloRe head, OAA's loss in its stable-softplus form
nsrom_oacam = dict(type='TrainIntegralAttention', name='nsrom_oacam', targets='nsrom_classify',
                   model=dict(type='OACAMModel', loss_form='nsrom', **nsrom_model),
                   max_epochs=12, batch_size=64)
nsrom_oacams = dict(type='MakeCAMs', name='nsrom_oacams', source='nsrom_oacam', split='train',
                    scales=(1.0,), flip=False)
eval_nsrom_oacams = dict(type='EvaluateLabels', name='eval_nsrom_oacams', cams='nsrom_oacams',
                         threshold=0.25)
# initial pseudo labels: background extraction (OAA's rule) + potential object mining
nsrom_labels = dict(type='RefineLabels', name='nsrom_labels', cams='nsrom_oacams',
                    extra_cams=dict(plain_cams='nsrom_cams'),
                    refiners=[dict(type='OAAProxyLabels'),
                              dict(type='PotentialObjectMining', cams_key='plain_cams')])
eval_nsrom_labels = dict(type='EvaluateLabels', name='eval_nsrom_labels', labels='nsrom_labels')
# round 1, its CRF predictions on the training images, the masked labels: the DeepLab recipe's
# stages (deeplab::_recipes/synthetic.py) as oaa::synthetic.py's oaa_deeplab / oaa_test run them
nsrom_deeplab1 = dict(_base_.stages.oaa_deeplab, name='nsrom_deeplab1', labels='nsrom_labels')
nsrom_test1 = dict(_base_.stages.oaa_test, name='nsrom_test1', checkpoint='nsrom_deeplab1')
nsrom_predict_train = dict(_base_.stages.oaa_test, name='nsrom_predict_train',
                           checkpoint='nsrom_deeplab1', split='train')
nsrom_masked = dict(type='MaskNonSalientRegions', name='nsrom_masked',
                    predictions='nsrom_predict_train', labels='nsrom_labels', dilation=30)
eval_nsrom_masked = dict(type='EvaluateLabels', name='eval_nsrom_masked', labels='nsrom_masked')
# round 2: the same recipe and initial weights, on the masked labels
nsrom_deeplab2 = dict(_base_.stages.oaa_deeplab, name='nsrom_deeplab2', labels='nsrom_masked')
nsrom_test = dict(_base_.stages.oaa_test, name='nsrom_test', checkpoint='nsrom_deeplab2')

# appended after the base's stages (the baseline and OAA, exactly as oaa::synthetic.py)
stages = dict(
    nsrom_classify=nsrom_classify, nsrom_cams=nsrom_cams, eval_nsrom_cams=eval_nsrom_cams,
    nsrom_accumulated=nsrom_accumulated, eval_nsrom_accumulated=eval_nsrom_accumulated,
    nsrom_oacam=nsrom_oacam, nsrom_oacams=nsrom_oacams, eval_nsrom_oacams=eval_nsrom_oacams,
    nsrom_labels=nsrom_labels, eval_nsrom_labels=eval_nsrom_labels,
    nsrom_deeplab1=nsrom_deeplab1, nsrom_test1=nsrom_test1,
    nsrom_predict_train=nsrom_predict_train, nsrom_masked=nsrom_masked,
    eval_nsrom_masked=eval_nsrom_masked, nsrom_deeplab2=nsrom_deeplab2, nsrom_test=nsrom_test)
