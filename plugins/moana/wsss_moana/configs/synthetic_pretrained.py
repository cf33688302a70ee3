# MoANA vs plain CAMs (IRN route) on SyntheticShapes from a ResNet-50 (1/4 width) pretrained on the ShapeCorpus, CPU; needs no files.
# Differs from moana::synthetic.py (SmallResNet from scratch, the IRN on the classifier's
# trunk) only in the networks' trunks and their start (moana::_recipes/synthetic_pretrained.py):
# moana_pretrain (ResNet-50 at 1/4 width, IRN's strides, 9 epochs on the 64 px ShapeCorpus,
# cached in $WSSS_CACHE/pretrained); both arms' classifiers fine-tune it (stride 8, frozen
# stem and BatchNorm statistics as the reference, ImageNet normalisation, trunk at half of
# the new layers' rate); both arms' relation networks use it frozen, as IRN does with ImageNet.
#
#   wsss-run moana::synthetic_pretrained.py     (work_dirs/moana_synthetic_pretrained)
_base_ = ['moana::synthetic.py', 'moana::_recipes/synthetic_pretrained.py']
work_dir = 'work_dirs/moana_synthetic_pretrained'

stages = dict(_base_.moana_pretrained_stages)
