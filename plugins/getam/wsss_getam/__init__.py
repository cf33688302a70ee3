"""wsss-getam: GETAM, gradient-weighted element-wise transformer attention maps (Sun et al.,
arXiv 2112.02841) as a wsss plugin (light: no torch import here).

Built so far: the online pseudo labels of the joint phase (``wsss_getam.online_labels``; the
PAMR refinement they start from is the core's ``wsss_core.refiners.pamr``) and the joint-phase
losses (``wsss_getam.losses``: split cross-entropy, saliency BCE, gated dense-CRF energy),
registered into the core registries when the plugin loads (``wsss_getam.plugin``).
"""
__version__ = '0.1.0'
