"""wsss-edam: Embedded Discriminative Attention Mechanism (Wu et al., CVPR 2021) as a wsss
plugin (light: no torch import here).

The discriminative activation layer and collaborative multi-attention
(``wsss_edam.models``), the image-pair data (``wsss_edam.datasets``), the pair-training stage
(``wsss_edam.stages``) and EDAM's saliency fusion (``wsss_edam.saliency_fusion``) register
into the core registries when the plugin loads (``wsss_edam.plugin``).  The ResNet-38
backbone lives in the core (``wsss_core.models.resnet38``), shared by the psa family.
"""
__version__ = '0.1.0'
