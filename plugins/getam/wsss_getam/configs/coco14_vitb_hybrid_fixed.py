# GETAM ViT-B/16 hybrid on COCO 2014, slips fixed; needs COCO 2014, saliency, timm weights.
# GETAM on MS COCO 2014, ViT-B/16 hybrid, with the released code's two slips corrected.
# Differs from getam::coco14_vitb_hybrid.py only in: the intended SGD (weight decay 5e-4, no
# momentum; reference_optimizer=False) and the intended saliency-loss target (1 - saliency).
#
#   wsss-prepare --for getam::coco14_vitb_hybrid_fixed.py
#   wsss-run getam::coco14_vitb_hybrid_fixed.py
#
# Data and weights (items; `wsss-prepare --for` gets them): coco14,
# coco14-saliency-getam (by hand: wsss-prepare coco14-saliency-getam --from DIR_OR_ARCHIVE),
# timm-vit_base_r50_s16_384.orig_in21k_ft_in1k.
_base_ = ['getam::coco14_vitb_hybrid.py']
work_dir = 'work_dirs/getam_coco14_vitb_hybrid_fixed'

# the base's stages; the 'getam' stage's switches to the intended behaviour
stages = dict(getam=dict(reference_optimizer=False,
                         model=dict(joint=dict(saliency_loss=dict(mode='intended')))))
