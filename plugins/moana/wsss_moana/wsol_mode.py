"""The WSOL evaluation mode ``'moana-compat'``, registered in the core's WSOL mode table.

What the MoANA repository's tester prints (the metric definitions are in
:mod:`wsss_core.wsol.modes`): 65th-percentile normalised score maps, the largest contour
only, no MaxBoxAccV2, ``MaxBoxAcc`` the mean over IoU thresholds {30, 50, 70}, ``Top-1 Loc``
at the fixed tau 0.04.  Imported by :mod:`.models.moana_classifier`, so the mode is there
whenever the plugin is loaded.
"""
from wsss_core.wsol.modes import WSOLMode, register_wsol_mode

MOANA_COMPAT = register_wsol_mode(
    WSOLMode('moana-compat', normalization='percentile', report_v2=False, maxboxacc_mean=True,
             top1_loc_tau=0.04), source='moana')
