# GETAM ViT-B/16 hybrid on VOC 2012, slips fixed; needs VOC2012 + SBD, saliency PNGs, timm weights.
# GETAM on PASCAL VOC 2012, ViT-B/16 hybrid, with the released code's two slips corrected.
# Differs from getam::voc12_vitb_hybrid.py only in: the intended SGD (weight decay 5e-4, no
# momentum; reference_optimizer=False) and the intended saliency-loss target (1 - saliency;
# saliency_loss mode='intended').  No published number was produced this way.
#
#   wsss-prepare --for getam::voc12_vitb_hybrid_fixed.py
#   wsss-run getam::voc12_vitb_hybrid_fixed.py
#
# Data and weights (items; `wsss-prepare --for` gets them): voc12-aug (VOC 2012 + SBD),
# voc12-saliency-getam (by hand: wsss-prepare voc12-saliency-getam --from DIR_OR_ARCHIVE),
# timm-vit_base_r50_s16_384.orig_in21k_ft_in1k.
_base_ = ['getam::voc12_vitb_hybrid.py']
work_dir = 'work_dirs/getam_voc12_vitb_hybrid_fixed'

# the base's stages; the 'getam' stage's switches to the intended behaviour
stages = dict(getam=dict(reference_optimizer=False,
                         model=dict(joint=dict(saliency_loss=dict(mode='intended')))))
