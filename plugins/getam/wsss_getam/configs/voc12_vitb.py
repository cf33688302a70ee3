# GETAM ViT-B/16 on VOC 2012; needs VOC2012 + SBD, saliency PNGs, timm ViT-B/16 weights.
# GETAM on PASCAL VOC 2012 with the ViT-B/16 backbone (timm tag
# vit_base_patch16_384.orig_in21k_ft_in1k; reported 68.1 val / 68.8 test mIoU): everything as
# getam::voc12_vitb_hybrid.py but the encoder (hook blocks 2, 5, 8, 11;
# docs/methods/getam.md#22-backbones).
#
#   wsss-prepare --for getam::voc12_vitb.py && wsss-run getam::voc12_vitb.py
#
# Data and weights (items; `wsss-prepare --for` gets them): voc12-aug (VOC 2012 + SBD),
# voc12-saliency-getam (by hand: wsss-prepare voc12-saliency-getam --from DIR_OR_ARCHIVE),
# timm-vit_base_patch16_384.orig_in21k_ft_in1k.
_base_ = ['./voc12_vitb_hybrid.py']
work_dir = 'work_dirs/getam_voc12_vitb'

# the hybrid's stages; only the encoder of the 'getam' stage differs
stages = dict(getam=dict(model=dict(backbone=dict(
    model_name='vitb', checkpoint='item:timm-vit_base_patch16_384.orig_in21k_ft_in1k'))))
