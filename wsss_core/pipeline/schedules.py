"""Learning-rate schedules as mmengine ``param_scheduler`` configs, shared by the stages.

:func:`poly_schedule` -- poly decay ``lr_t = eta_min + (lr_0 - eta_min)(1 - t / T)^power`` at
0-based iteration t of T.  mmengine's ``PolyLR`` is chainable: after k steps it holds
``lr_0 ((N - k) / N)^p`` with ``N = end - begin - 1``, hence ``end = T + 1``.  Used by
``TrainIRN`` (irn) and DeepLab's ``TrainSegmentor`` (deeplab-pytorch; its stepped variant
lives in the deeplab plugin).
"""
from __future__ import annotations

__all__ = ['poly_schedule']


def poly_schedule(total_steps: int, power: float = 0.9, eta_min: float = 0.0) -> list:
    """``[PolyLR]`` decaying every iteration over ``total_steps`` (see the module docstring)."""
    if int(total_steps) < 1:
        raise ValueError(f'total_steps must be >= 1, got {total_steps}')
    return [dict(type='PolyLR', power=float(power), eta_min=float(eta_min), begin=0,
                 end=int(total_steps) + 1, by_epoch=False)]
