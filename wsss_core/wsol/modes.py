"""WSOL evaluation modes (presets) and what each reported metric means in them.

:data:`MODES` is a registry plugins fill (:func:`register_wsol_mode`): the core registers
``standard``; the MoANA plugin registers ``moana-compat`` when it is loaded
(``wsss_moana.wsol_mode``).  Both are described here because the evaluator implements both.

``standard`` -- wsolevaluation (Choe et al., CVPR 2020 / TPAMI), the default:

* score map = min-max normalised CAM (:func:`~.normalize.minmax_normalize`);
* tau in ``arange(0, 1, 0.01)``; IoU thresholds delta in {30, 50, 70};
* ``MaxBoxAccV2`` = mean over delta of max_tau BoxAcc(tau, delta), boxes from **all**
  contours (``MaxBoxAccV2@<delta>`` per delta);
* ``MaxBoxAcc@<delta>`` = max_tau BoxAcc(tau, delta) with the **largest** contour;
  ``MaxBoxAcc`` = ``MaxBoxAcc@50`` (the CVPR'20 metric) = ``GT-known Loc``;
* ``Top-1 Loc`` = top-1 class correct and IoU >= 0.5 (largest contour) at the tau that
  maximises BoxAcc(tau, 50) (the GT-known tau; wsolevaluation itself reports no Top-1 Loc);
* ``Top-5 Loc`` = top-5 correct and IoU >= 0.5 (largest contour) at the tau maximising
  this count (oracle tau, as MoANA's tester).

``moana-compat`` -- what the MoANA repository's tester prints
(``docs/methods/moana.md#6-wsol-evaluation``):

* score map = 65th-percentile normalised CAM (:func:`~.normalize.percentile_normalize`);
* single (largest) contour everywhere; no ``MaxBoxAccV2`` is reported;
* ``MaxBoxAcc`` = mean over delta in {30, 50, 70} of ``MaxBoxAcc@<delta>`` (a hybrid of
  MaxBoxAccV2's IoU averaging and MaxBoxAcc's single contour);
* ``GT-known Loc`` = ``MaxBoxAcc@50``;
* ``Top-1 Loc`` at the fixed tau 0.04 (index 4 of the 0.01 grid);
* ``Top-5 Loc`` at the oracle tau, as in ``standard``.

Both: ``Top-1 Cls`` / ``Top-5 Cls`` = classification accuracy; ``PxAP`` (when GT masks
are given) = pixel average precision over the same tau bins.  All values are percentages.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Tuple

from ..presets import PresetTable
from .normalize import MOANA_PERCENTILE


@dataclass(frozen=True)
class WSOLMode:
    """One evaluation preset (see the module docstring for the metric definitions).

    Attributes:
        name: preset name.
        normalization: ``'minmax'`` or ``'percentile'``.
        percentile: q of the percentile normalisation.
        report_v2: report ``MaxBoxAccV2`` (all contours, mean over deltas).
        maxboxacc_mean: ``MaxBoxAcc`` is the mean over deltas (MoANA) instead of delta 50.
        top1_loc_tau: fixed tau of ``Top-1 Loc``; None = the GT-known Loc tau.
        cam_curve_interval: tau step.
        iou_thresholds: deltas in percent.
    """
    name: str
    normalization: str = 'minmax'
    percentile: float = MOANA_PERCENTILE
    report_v2: bool = True
    maxboxacc_mean: bool = False
    top1_loc_tau: Optional[float] = None
    cam_curve_interval: float = 0.01
    iou_thresholds: Tuple[int, ...] = (30, 50, 70)

    def __post_init__(self):
        if self.normalization not in ('minmax', 'percentile'):
            raise ValueError(f"normalization must be 'minmax' or 'percentile', "
                             f'not {self.normalization!r}')
        if 50 not in self.iou_thresholds:
            raise ValueError('iou_thresholds must contain 50 (GT-known Loc and MaxBoxAcc '
                             f'use it), got {self.iou_thresholds}')


#: the WSOL evaluation modes by name (a :class:`~wsss_core.presets.PresetTable`): the core's
#: ``standard`` and those of the loaded plugins
MODES: PresetTable[WSOLMode] = PresetTable('WSOL evaluation mode')


def register_wsol_mode(mode: WSOLMode, *, source: str) -> WSOLMode:
    """Register ``mode`` under ``mode.name`` on behalf of ``source`` (``'core'`` or the
    plugin's name); a plugin calls it in a module its component table imports."""
    if not isinstance(mode, WSOLMode):
        raise TypeError(f'expected a WSOLMode, got {type(mode).__name__}')
    return MODES.register(mode.name, mode, source=source)


register_wsol_mode(WSOLMode('standard'), source='core')


def get_mode(mode, **overrides) -> WSOLMode:
    """The preset ``mode`` (a name or a :class:`WSOLMode`) with ``overrides`` (None = keep)."""
    if isinstance(mode, WSOLMode):
        base = mode
    else:
        base = MODES[mode]      # an unknown name: UnknownPresetError (a ValueError) naming
        #                         the registered modes and the plugin to load
    changes = {k: v for k, v in overrides.items() if v is not None}
    if 'iou_thresholds' in changes:
        changes['iou_thresholds'] = tuple(int(d) for d in changes['iou_thresholds'])
    return dataclasses.replace(base, **changes) if changes else base
