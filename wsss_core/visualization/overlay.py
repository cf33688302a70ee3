"""Overlays of CAMs and label maps on RGB images.

``blend(img, colour, alpha) = round((1 - alpha) * img + alpha * colour)`` per pixel, so
``alpha = 0`` returns the image unchanged and ``alpha = 1`` the colour layer. The CAM colour
layer is OpenCV's JET colormap of ``round(255 * clip(cam, 0, 1))`` converted to RGB
(0 -> dark blue, 1 -> dark red); the label colour layer is the VOC palette.
"""
from __future__ import annotations

import cv2
import numpy as np

from .palette import colorize_label

__all__ = ['blend', 'overlay_cam', 'overlay_label', 'cam_to_rgb']


def _check_image(img) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'image must be (H, W, 3) RGB, got shape {img.shape}')
    return img.astype(np.uint8, copy=False)


def blend(img: np.ndarray, colour: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``(1 - alpha) * img + alpha * colour``, rounded to uint8; both (H, W, 3)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f'alpha must lie in [0, 1], got {alpha}')
    img = _check_image(img)
    if alpha == 0:
        return img.copy()
    out = (1.0 - alpha) * img.astype(np.float32) + alpha * np.asarray(colour, np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def cam_to_rgb(cam: np.ndarray) -> np.ndarray:
    """JET-coloured (H, W, 3) uint8 RGB of a CAM in [0, 1] (clipped; NaN -> 0)."""
    cam = np.nan_to_num(np.asarray(cam, dtype=np.float32), nan=0.0)
    if cam.ndim != 2:
        raise ValueError(f'cam must be (H, W), got shape {cam.shape}')
    gray = np.rint(np.clip(cam, 0.0, 1.0) * 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(gray, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def overlay_cam(img: np.ndarray, cam: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the JET colouring of ``cam`` (H, W) over ``img`` (H, W, 3) uint8 RGB.

    A CAM of another size is resized bilinearly to the image first.
    """
    img = _check_image(img)
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim == 2 and cam.shape != img.shape[:2]:
        cam = cv2.resize(cam, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
    return blend(img, cam_to_rgb(cam), alpha)


def overlay_label(img: np.ndarray, label: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the VOC-palette colouring of ``label`` (H, W) over ``img`` (H, W, 3) uint8 RGB.

    Every pixel is blended (background with black, ignore with (224, 224, 192)). A label
    map of another size is resized with nearest neighbour first.
    """
    img = _check_image(img)
    label = np.asarray(label)
    if label.ndim == 2 and label.shape != img.shape[:2]:
        label = cv2.resize(label.astype(np.uint8), (img.shape[1], img.shape[0]),
                           interpolation=cv2.INTER_NEAREST)
    return blend(img, colorize_label(label), alpha)
