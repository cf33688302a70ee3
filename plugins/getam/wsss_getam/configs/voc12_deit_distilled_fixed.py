# GETAM distilled DeiT-B/16 on VOC 2012, slips fixed; needs VOC2012 + SBD, saliency, timm weights.
# GETAM on PASCAL VOC 2012 with the distilled DeiT-B/16, the released code's two slips
# corrected.  Differs from getam::voc12_deit_distilled.py only in: the intended SGD (weight
# decay 5e-4, no momentum; reference_optimizer=False) and the intended saliency-loss target
# (1 - saliency).
#
#   wsss-prepare --for getam::voc12_deit_distilled_fixed.py
#   wsss-run getam::voc12_deit_distilled_fixed.py
#
# Data and weights (items; `wsss-prepare --for` gets them): voc12-aug (VOC 2012 + SBD),
# voc12-saliency-getam (by hand: wsss-prepare voc12-saliency-getam --from DIR_OR_ARCHIVE),
# timm-deit_base_distilled_patch16_384.fb_in1k.
_base_ = ['getam::voc12_deit_distilled.py']
work_dir = 'work_dirs/getam_voc12_deit_distilled_fixed'

# the base's stages; the 'getam' stage's switches to the intended behaviour
stages = dict(getam=dict(reference_optimizer=False,
                         model=dict(joint=dict(saliency_loss=dict(mode='intended')))))
