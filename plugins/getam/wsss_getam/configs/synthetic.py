# GETAM with a tiny ViT from scratch on SyntheticShapes, CPU; needs no files.
# GETAM end to end on SyntheticShapes, CPU, with a tiny ViT from scratch.
#
#   TrainGETAM: classification phase (first half of the iterations), then the joint phase
#   (GETAM maps -> PAMR -> online pseudo labels -> split CE + saliency BCE + gated dense-CRF
#   loss + classification, lr x 0.1) -> the segmentation head, tested on val with square
#   resizes and the dense CRF (GETAM's preset).  Afterwards, on the training images with the
#   trained network: GETAM maps next to attention rollout and the plain CAM of the class head
#   (the same ViT), and the online pseudo labels made offline from the GETAM maps.
#
#   wsss-run getam::synthetic.py                (work_dirs/getam_synthetic)
#
# The stages come from the fragment getam::_recipes/synthetic.py (getam_synthetic_stages):
# getam, getam_maps, getam_rollout_maps, getam_plain_cams (each with its eval_*),
# getam_online_labels, getam_test.
#
# Differences from the VOC recipe (getam::voc12_vitb_hybrid.py), all for a CPU run from
# scratch: a ViT-Tiny-sized encoder (embed 192, 12 blocks, 3 heads; no weights on disk) and a
# 64-wide decoder instead of ViT-B/16-hybrid and 256; 96 px crops (the images' size; long
# side in [86, 110], the reference's [230, 292] for 256 scaled) instead of 256; batch 16 for
# 8 epochs (1500 iterations; a joint step takes about 2.3 s on one CPU core) instead of 4 for
# 20; AdamW 1e-3 (the usual optimiser for a ViT trained from scratch; the reference's SGD 0.04
# fine-tunes ImageNet weights) under GETAM's own schedule (poly 0.9, x0.1 in the joint
# phase); test sizes 64 / 96 / 160 instead of 256 / 320 / 480 (about the same ratios to the
# training crop, multiples of 32).  The GETAM map (last six of twelve blocks), PAMR, the
# online-label constants and the losses are the reference's; the saliency loss uses the
# intended target (the default).
_base_ = ['getam::_recipes/synthetic.py']
seed = 0
work_dir = 'work_dirs/getam_synthetic'
plugins = ['deeplab', 'getam']

data = dict(
    type='SyntheticShapes',
    generator=dict(image_size=96, num_classes=6, seed=0, num_train=3000, num_val=500),
)

stages = _base_.getam_synthetic_stages
