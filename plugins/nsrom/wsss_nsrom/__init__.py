"""wsss-nsrom: Non-Salient Region Object Mining (Yao et al., CVPR 2021) as a wsss plugin
(light: no torch import here).

Builds on wsss-oaa (the classifier, the accumulation hook, the integral attention model and
its loss, the proxy-label rule) and wsss-deeplab (the two segmentation rounds).  Adds the
graph-reasoning (GloRe) head (``wsss_nsrom.models``), potential object mining
(``wsss_nsrom.potential_object_mining``) and non-salient region masking
(``wsss_nsrom.stages.mask_non_salient``).
"""
__version__ = '0.1.0'
