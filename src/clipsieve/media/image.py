"""Small image helpers the scorers share: grey and short-side resizing with OpenCV."""

from __future__ import annotations

import cv2
import numpy as np


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 grey (BT.601 luma) from an RGB (h, w, 3) or already grey (h, w) frame."""
    if image.ndim == 2:
        return image
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


def resize_short_side(image: np.ndarray, short_side: int, upscale: bool = True) -> np.ndarray:
    """Resize so the shorter side is ``short_side`` px, keeping the aspect ratio.

    ``upscale``: also grow small frames, for scores measured in analysis pixels that must mean
    the same thing whatever the source resolution (motion, static); without it a frame is only
    ever shrunk (detectors that work at their own size). INTER_AREA when shrinking (no
    aliasing), INTER_LINEAR when growing.
    """
    h, w = image.shape[:2]
    if min(h, w) == short_side or (not upscale and min(h, w) < short_side):
        return image
    scale = short_side / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interp)


def fit_short_side(image: np.ndarray, short_side: int) -> np.ndarray:
    """Shrink ``image`` so its short side is ``short_side`` (area filter); never upscale."""
    return resize_short_side(image, short_side, upscale=False)


def to_bgr(image: np.ndarray) -> np.ndarray:
    """OpenCV's BGR order from an RGB or grey frame (ONNX detectors read numpy as BGR)."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
