"""Visualisation: VOC palette, CAM / label overlays, contact sheets.

Only the palette (numpy) is imported eagerly, since ``wsss_core.io`` depends on it; the
OpenCV-based overlay and sheet helpers load on first access.
"""
from .palette import colorize_label, voc_palette

_LAZY = {'overlay_cam': 'overlay', 'overlay_label': 'overlay', 'blend': 'overlay',
         'make_sheet': 'sheet', 'save_sheet': 'sheet'}

__all__ = ['voc_palette', 'colorize_label', *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f'.{_LAZY[name]}', __name__), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
