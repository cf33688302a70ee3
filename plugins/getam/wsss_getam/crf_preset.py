"""GETAM's dense-CRF preset ``'getam'``, registered in the core's CRF preset table.

GETAM's test-time CRF (crf_inference_inf): Gaussian sxy 3, compat 3; bilateral sxy 83,
srgb 5, compat 4; 20 mean-field iterations (its in-training validation uses 10: an override).
Imported by :mod:`.stages.train_getam`, so the preset is there whenever the plugin is loaded.
"""
from wsss_core.refiners.dense_crf import CRFParams, register_crf_preset

GETAM_CRF = register_crf_preset(
    'getam', CRFParams(gauss_sxy=3, gauss_compat=3, bilat_sxy=83, bilat_srgb=5, bilat_compat=4,
                       iterations=20), source='getam')
