"""EDAM's dense-CRF preset ``'edam'``, registered in the core's CRF preset table.

EDAM's pseudo-label CRF (infer_cls.py): psa's kernels (Gaussian sxy 3, compat 3; bilateral
sxy 80, srgb 13, compat 10; psa's ``scale_factor``, 1 by default) with 3 mean-field
iterations.  Imported by :mod:`.saliency_fusion`, so the preset is there whenever the plugin
is loaded.
"""
from wsss_core.refiners.dense_crf import CRF_PRESETS, register_crf_preset

EDAM_CRF = register_crf_preset('edam', CRF_PRESETS['psa'].replace(iterations=3), source='edam')
