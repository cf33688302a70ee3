# NSROM on SyntheticShapes from OAA's VGG16 (1/4 width) pretrained on the ShapeCorpus, CPU; needs no files.
# Differs from nsrom::synthetic.py only in the OAA and NSROM stages, which start from the VGG16
# stand-in pretrained on the ShapeCorpus (oaa_pretrain: 10 epochs on the 64 px corpus, cached
# in $WSSS_CACHE/pretrained and shared with oaa::synthetic_pretrained.py), with the ImageNet
# normalisation, the trunk at half the head's rate and colour jitter
# (oaa::_recipes/synthetic_pretrained.py, nsrom::_recipes/synthetic_pretrained.py).  The
# baseline stages are the from-scratch ones, shared by hash with the other synthetic runs.
#
#   wsss-run nsrom::synthetic_pretrained.py --work-dir work_dirs/oaa_synthetic_pretrained
#       (after oaa::synthetic_pretrained.py: only the NSROM stages run)
#   wsss-run nsrom::synthetic_pretrained.py     (everything, work_dirs/nsrom_synthetic_pretrained)
_base_ = ['nsrom::synthetic.py', 'nsrom::_recipes/synthetic_pretrained.py']
work_dir = 'work_dirs/nsrom_synthetic_pretrained'

stages = dict(_base_.oaa_pretrained_stages, **_base_.nsrom_pretrained_stages)
