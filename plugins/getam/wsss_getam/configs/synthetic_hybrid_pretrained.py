# GETAM on SyntheticShapes from a hybrid ViT (ResNet stem + ViT-Tiny-sized encoder) pretrained on the ShapeCorpus, CPU; needs no files.
# As getam::synthetic_pretrained.py with the reference's other backbone family, the ViT-B/16
# hybrid, at CPU size (getam_hybrid_pretrained_stages of getam::_recipes/synthetic.py; stages
# named getam_hybrid_pretrain, getam_hybrid, getam_hybrid_maps, ...): the ViT-Tiny-sized encoder on
# a small ResNet stem (stride 16, 32 / 64 / 128 channels, GroupNorm in one group), pretrained 5 epochs on
# the 64 px ShapeCorpus (cached in $WSSS_CACHE/pretrained), then GETAM from it with ImageNet
# normalisation, the whole network at one AdamW rate (1e-3), 20 epochs, 16 classification only.
#
#   wsss-run getam::synthetic_hybrid_pretrained.py   (work_dirs/getam_synthetic_hybrid_pretrained)
_base_ = ['getam::synthetic.py']
work_dir = 'work_dirs/getam_synthetic_hybrid_pretrained'

stages = dict(_delete_=True, **_base_.getam_hybrid_pretrained_stages)
