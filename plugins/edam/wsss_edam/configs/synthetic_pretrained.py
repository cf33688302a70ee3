# EDAM on SyntheticShapes from a ResNet-38 pretrained on the ShapeCorpus, CPU; needs no files.
# Differs from edam::synthetic.py (which trains the ResNet-38 from scratch) only in EDAM's
# classifier's start (edam::_recipes/synthetic_pretrained.py): edam_pretrain (the same
# ResNet-38 at 1/8 width, 5 epochs on the 64 px ShapeCorpus, cached in
# $WSSS_CACHE/pretrained), then edam_classify from it with ImageNet normalisation, the
# backbone at AdamW 2e-4 and EDAM's new layers x10.  The baseline stages are the from-scratch
# ones, shared by hash with the other synthetic runs.
#
#   wsss-run edam::synthetic_pretrained.py          (work_dirs/edam_synthetic_pretrained)
_base_ = ['edam::synthetic.py', 'edam::_recipes/synthetic_pretrained.py']
work_dir = 'work_dirs/edam_synthetic_pretrained'

stages = dict(_base_.edam_pretrained_stages)
