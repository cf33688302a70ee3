# core::your_data.py plus mIoU of its CAMs and pseudo labels; needs your images, tags and masks.
# Your own data with masks: core::your_data.py plus the evaluation of CAMs and pseudo labels
# against index-mask PNGs (0 background, k + 1 = class_names[k], 255 ignore) named like the
# images.  Every image needs a mask; give class_names in the masks' order.
# Run: wsss-run core::your_data_with_masks.py --cfg-options data.data_root=my_data/images \
#          data.labels=my_data/tags.csv data.mask_dir=my_data/masks "data.class_names=[cat,dog]"
_base_ = ['core::your_data.py']
work_dir = 'work_dirs/your_data_with_masks'

data = dict(mask_dir='my_data/masks')

eval_cams = dict(type='EvaluateLabels', name='eval_cams', cams='cams', threshold=0.25)
eval_labels_threshold = dict(type='EvaluateLabels', name='eval_labels_threshold',
                             labels='labels_threshold')
eval_labels_saliency = dict(type='EvaluateLabels', name='eval_labels_saliency',
                            labels='labels_saliency')

stages = [{{_base_.classify}}, {{_base_.cams}}, eval_cams, {{_base_.labels_threshold}},
          eval_labels_threshold, {{_base_.labels_saliency}}, eval_labels_saliency,
          {{_base_.sheet}}]
