"""wsss-deeplab: the DeepLab segmentation stage of WSSS pipelines (light: no torch import here).

DeepLab v2 (ResNet-101, atrous spatial pyramid pooling, multi-scale max fusion; Chen et al.,
TPAMI 2018) as reproduced by kazuto1011/deeplab-pytorch (the segmentation step of OAA and
NSROM), and DeepLab v3+ (Chen et al., ECCV 2018).  Components live in ``wsss_deeplab.models``,
``.optim``, ``.datasets`` and ``.stages`` and register into the core registries when the
plugin loads (``wsss_deeplab.plugin``).
"""
__version__ = '0.1.0'
