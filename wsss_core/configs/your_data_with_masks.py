# core::your_data.py plus mIoU of its CAMs and pseudo labels; needs your images, tags and masks.
# Your own data with masks: core::your_data.py plus the evaluation of CAMs and pseudo labels
# against index-mask PNGs (0 background, k + 1 = class_names[k], 255 ignore) named like the
# images.  Every image needs a mask; give class_names in the masks' order.
# Run: wsss-run core::your_data_with_masks.py --cfg-options data.data_root=my_data/images \
#          data.labels=my_data/tags.csv data.mask_dir=my_data/masks "data.class_names=[cat,dog]"
_base_ = ['core::your_data.py']
work_dir = 'work_dirs/your_data_with_masks'

data = dict(mask_dir='my_data/masks')

# the base's stages, each scored against the masks right after it (inserted by name)
stages = dict(
    eval_cams=dict(type='EvaluateLabels', cams='cams', threshold=0.25, after='cams'),
    eval_labels_threshold=dict(type='EvaluateLabels', labels='labels_threshold',
                               after='labels_threshold'),
    eval_labels_saliency=dict(type='EvaluateLabels', labels='labels_saliency',
                              after='labels_saliency'))
