# GETAM on SyntheticShapes from a ViT-Tiny-sized ViT pretrained on the ShapeCorpus, CPU; needs no files.
# Differs from getam::synthetic.py (which trains the ViT from scratch) only in the training
# stage's start (getam_pretrained_stages of getam::_recipes/synthetic.py): getam_pretrain (the same ViT,
# 5 epochs on the 64 px ShapeCorpus, cached in $WSSS_CACHE/pretrained), then getam from it
# with ImageNet normalisation, the whole network at one AdamW rate (1e-3), 20 epochs, 16
# classification only.
#
#   wsss-run getam::synthetic_pretrained.py     (work_dirs/getam_synthetic_pretrained)
_base_ = ['getam::synthetic.py']
work_dir = 'work_dirs/getam_synthetic_pretrained'

stages = dict(_delete_=True, **_base_.getam_pretrained_stages)
