# OAA on SyntheticShapes from a VGG16 (1/4 width) pretrained on the ShapeCorpus, CPU; needs no files.
# Differs from oaa::synthetic.py (OAA from a SmallResNet trained from scratch) only in OAA's
# stages, as oaa::_recipes/synthetic_pretrained.py says: oaa_pretrain (VGG16 with OAA's
# strides at 1/4 width, 10 epochs on the 64 px ShapeCorpus, cached in $WSSS_CACHE/pretrained),
# then oaa_classify / oaa_late_classify / oaa_iam on that VGG from its weights (ImageNet
# normalisation, trunk at half the head's rate, colour jitter).  The baseline stages
# (classify ... test) are the from-scratch ones of oaa::synthetic.py, shared by hash.
#
#   wsss-run oaa::synthetic_pretrained.py       (work_dirs/oaa_synthetic_pretrained)
_base_ = ['oaa::synthetic.py', 'oaa::_recipes/synthetic_pretrained.py']
work_dir = 'work_dirs/oaa_synthetic_pretrained'

stages = dict(_base_.oaa_pretrained_stages)
