"""Contact sheets: a grid of images with column titles and row labels, saved as PNG.

Layout (pixels), for ``R`` rows, ``N`` columns (the longest row or the number of titles) and
cell size ``s``::

    height = (HEADER_HEIGHT if titles else 0) + R * s
    width  = (label strip width if row_labels else 0) + N * s

Each cell is scaled to fit ``s x s`` keeping its aspect ratio and centred on gray; a missing
cell (``None``, or a row shorter than ``N``) is plain gray. Cells may be (H, W, 3) uint8 RGB,
(H, W) uint8 grayscale, or float (H, W[, 3]) in [0, 1] (scaled by 255).
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import cv2
import numpy as np

__all__ = ['make_sheet', 'save_sheet', 'HEADER_HEIGHT', 'GRAY']

HEADER_HEIGHT = 24
GRAY = (128, 128, 128)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALE = 0.45
_TEXT_PAD = 4


def _to_rgb(cell) -> np.ndarray:
    arr = np.asarray(cell)
    if np.issubdtype(arr.dtype, np.floating):
        arr = np.rint(np.clip(np.nan_to_num(arr), 0.0, 1.0) * 255)
    arr = arr.astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f'a sheet cell must be (H, W) or (H, W, 3), got shape {arr.shape}')
    return arr


def _fit_cell(cell, size: int) -> np.ndarray:
    """The cell scaled to fit ``size x size`` (aspect kept), centred on gray."""
    out = np.empty((size, size, 3), dtype=np.uint8)
    out[:] = GRAY
    if cell is None:
        return out
    arr = _to_rgb(cell)
    h, w = arr.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(arr, (nw, nh), interpolation=interp)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top:top + nh, left:left + nw] = resized
    return out


def _text_scale(text: str, max_width: int) -> float:
    """Largest font scale (at most ``_FONT_SCALE``) at which ``text`` fits ``max_width``."""
    width = cv2.getTextSize(text, _FONT, _FONT_SCALE, 1)[0][0]
    return _FONT_SCALE if width <= max_width else max(0.2, _FONT_SCALE * max_width / width)


def _put_text(canvas: np.ndarray, text: str, x0: int, y0: int, width: int, height: int) -> None:
    """Draw ``text`` centred in the box (x0, y0, width, height), in black."""
    scale = _text_scale(text, width - 2 * _TEXT_PAD)
    (tw, th), _ = cv2.getTextSize(text, _FONT, scale, 1)
    x = x0 + max(_TEXT_PAD, (width - tw) // 2)
    y = y0 + (height + th) // 2
    cv2.putText(canvas, text, (x, y), _FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)


def _label_width(row_labels: Sequence[str]) -> int:
    widths = [cv2.getTextSize(str(t), _FONT, _FONT_SCALE, 1)[0][0] for t in row_labels]
    return max(widths, default=0) + 2 * _TEXT_PAD


def make_sheet(rows: List[List[Optional[np.ndarray]]], titles: Optional[List[str]] = None,
               row_labels: Optional[List[str]] = None, cell_size: int = 128) -> np.ndarray:
    """Assemble ``rows`` of images into one (H, W, 3) uint8 RGB grid (layout in module doc)."""
    if cell_size < 1:
        raise ValueError(f'cell_size must be positive, got {cell_size}')
    if row_labels is not None and len(row_labels) != len(rows):
        raise ValueError(f'{len(row_labels)} row labels for {len(rows)} rows')
    ncols = max([len(r) for r in rows] + [len(titles) if titles else 0, 1])
    top = HEADER_HEIGHT if titles else 0
    left = _label_width(row_labels) if row_labels else 0
    sheet = np.full((top + len(rows) * cell_size, left + ncols * cell_size, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        y = top + r * cell_size
        for c in range(ncols):
            cell = row[c] if c < len(row) else None
            x = left + c * cell_size
            sheet[y:y + cell_size, x:x + cell_size] = _fit_cell(cell, cell_size)
        if row_labels:
            _put_text(sheet, str(row_labels[r]), 0, y, left, cell_size)
    for c, title in enumerate(titles or []):
        _put_text(sheet, str(title), left + c * cell_size, 0, cell_size, top)
    return sheet


def save_sheet(path, rows: List[List[Optional[np.ndarray]]], titles: Optional[List[str]] = None,
               row_labels: Optional[List[str]] = None, cell_size: int = 128) -> np.ndarray:
    """:func:`make_sheet`, written atomically as PNG to ``path``; returns the sheet."""
    from ..io import save_rgb_png  # local: wsss_core.io imports this package's palette

    sheet = make_sheet(rows, titles, row_labels, cell_size)
    save_rgb_png(path, sheet)
    return sheet
