# DeepLab v2 on SyntheticShapes from a SmallResNet pretrained on the ShapeCorpus, CPU; needs no files.
# Differs from deeplab::synthetic.py only in the segmentation network's start
# (deeplab::_recipes/synthetic_pretrained.py): the SmallResNet pretrained on the ShapeCorpus
# (the stage `pretrain`, shared through $WSSS_CACHE/pretrained with
# core::quickstart_pretrained.py), ImageNet normalisation, trunk AdamW 2e-4, ASPP head x10.
# The pseudo labels are the quickstart's (from-scratch classifier, saliency fusion), so the
# two runs differ in DeepLab's initialisation alone.
#
#   wsss-run deeplab::synthetic_pretrained.py   (work_dirs/deeplab_synthetic_pretrained)
_base_ = ['deeplab::synthetic.py', 'deeplab::_recipes/synthetic_pretrained.py']
work_dir = 'work_dirs/deeplab_synthetic_pretrained'

stages = dict(pretrain=_base_.smallresnet_pretrain, deeplab=_base_.deeplab_pretrained)
