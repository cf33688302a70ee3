# GETAM ViT-B/16 hybrid on VOC 2012 (reference); needs VOC2012 + SBD, saliency PNGs, timm weights.
# GETAM (Sun et al.) on PASCAL VOC 2012 with the reference settings (docs/methods/getam.md;
# the recipe getam::_recipes/voc12.py), backbone ViT-B/16 hybrid (R50 +
# ViT-B/16, timm tag vit_base_r50_s16_384.orig_in21k_ft_in1k):
#   train_aug, long side in [230, 292], flip, 256 crops, batch 4, 20 epochs
#   ((10582 // 4) * 20 = 52900 iterations), one SGD group lr 0.04, poly 0.9; classification
#   only for the first half, then the joint phase (GETAM maps of the last six blocks -> PAMR
#   -> online labels (background from saliency, power 32, 90th-percentile completion, 10 x 10
#   opening) -> split CE + saliency BCE + gated dense-CRF loss (1e-7) + classification) at
#   a tenth of the lr -> val: logits averaged over 256 / 320 / 480 squares, dense CRF
#   (sxy 3 compat 3; bilateral sxy 83 srgb 5 compat 4; 20 iterations).
# Under torchrun, as the reference: SyncBatchNorm (sync_bn=True: the decoder's BatchNorms, on
# GPU; CPU runs keep plain BatchNorm) and DDP with find_unused_parameters (TrainGETAM's default).
# Reported (README): 71.7 val / 72.3 test mIoU.  Like the code that produced them, this config
# (the recipe) runs the released optimiser (its weight decay 5e-4 lands in SGD's momentum slot:
# momentum 5e-4, no weight decay; reference_optimizer=True) and the released saliency-loss
# target (aliased; model.joint.saliency_loss=dict(mode='reference')).  The corrected run
# (weight decay 5e-4, no momentum; target 1 - saliency): getam::voc12_vitb_hybrid_fixed.py.
#
#   wsss-prepare --for getam::voc12_vitb_hybrid.py && wsss-run getam::voc12_vitb_hybrid.py
#
# Data and weights (items; `wsss-prepare --for` gets them): voc12-aug (VOC 2012 + SBD),
# voc12-saliency-getam (the reference's released maps) and
# timm-vit_base_r50_s16_384.orig_in21k_ft_in1k (the backbone's timm weights, read as a file:
# the recipe's checkpoint=).  voc12-saliency-getam is downloaded by hand (`wsss-prepare
# voc12-saliency-getam` says from where), then  wsss-prepare voc12-saliency-getam --from
# DIR_OR_ARCHIVE .  wsss-run downloads nothing; wsss-prepare does.
_base_ = ['getam::_recipes/voc12.py']
seed = 0
work_dir = 'work_dirs/getam_voc12_vitb_hybrid'
plugins = ['deeplab', 'getam']

data = dict(type='VOC2012', data_root='item:voc12-aug', saliency_dir='item:voc12-saliency-getam')
# miou: GETAM's Evaluator (nan-mean over the classes in ground truth or prediction)
test = dict(type='TestSegmentor', name='test', checkpoint='getam', split='val', workers=8,
            crf=dict(type='DenseCRF', preset='getam', image='raw_rgb'), miou_convention='union')

stages = dict(
    getam=dict(sync_bn=True),   # the recipe's stage (getam::_recipes/voc12.py)
    test=test,
)
