"""DeepLab's dense-CRF preset ``'deeplab'``, registered in the core's CRF preset table.

deeplab-pytorch's CRF (libs/utils/crf.py): Gaussian sxy 1, compat 3; bilateral sxy 67,
srgb 3, compat 4; 10 mean-field iterations (``POS_XY_STD``, ``POS_W``, ``BI_XY_STD``,
``BI_RGB_STD``, ``BI_W``).  Imported by :mod:`.models.deeplab_v2` (a module of the plugin's
component table), so the preset is there whenever the plugin is loaded; the core's
TestSegmentor uses it for ``crf=True``.
"""
from wsss_core.refiners.dense_crf import CRFParams, register_crf_preset

DEEPLAB_CRF = register_crf_preset(
    'deeplab', CRFParams(gauss_sxy=1, gauss_compat=3, bilat_sxy=67, bilat_srgb=3, bilat_compat=4,
                         iterations=10), source='deeplab')
