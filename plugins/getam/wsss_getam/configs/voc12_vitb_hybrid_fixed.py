# GETAM ViT-B/16 hybrid on VOC 2012, slips fixed; needs VOC2012 + SBD, saliency PNGs, timm weights.
# GETAM on PASCAL VOC 2012, ViT-B/16 hybrid, with the released code's two slips corrected.
# Differs from getam::voc12_vitb_hybrid.py only in: the intended SGD (weight decay 5e-4, no
# momentum; reference_optimizer=False) and the intended saliency-loss target (1 - saliency;
# saliency_loss mode='intended').  No published number was produced this way.
#
#   wsss-run getam::voc12_vitb_hybrid_fixed.py --cfg-options data.data_root=/data/VOCdevkit/VOC2012
_base_ = ['getam::voc12_vitb_hybrid.py']
work_dir = 'work_dirs/getam_voc12_vitb_hybrid_fixed'

stages = [
    dict(type='TrainGETAM', name='getam', recipe='voc12', sync_bn=True,
         reference_optimizer=False,
         model=dict(joint=dict(saliency_loss=dict(mode='intended')))),
    {{_base_.test}},
]
