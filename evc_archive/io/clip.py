"""Resizing frames for evaluation and training: short side to a size (area filter), centre crop."""

from __future__ import annotations

import numpy as np
from PIL import Image


def resize_short_side(frame: np.ndarray, short: int) -> Image.Image:
    """(H,W,3) uint8 -> PIL image whose short side is `short` (area filter when shrinking)."""
    h, w = frame.shape[:2]
    scale = short / min(h, w)
    size = (max(short, round(w * scale)), max(short, round(h * scale)))
    return Image.fromarray(frame).resize(size, Image.BOX)


def square_clip(frames: np.ndarray, size: int) -> np.ndarray:
    """(n,H,W,3) uint8 -> (n,size,size,3): short side resized to `size`, centre-cropped (the
    benchmarks' evaluation protocol)."""
    out = []
    for f in frames:
        im = np.asarray(resize_short_side(f, size))
        h, w = im.shape[:2]
        y0, x0 = (h - size) // 2, (w - size) // 2
        out.append(im[y0:y0 + size, x0:x0 + size])
    return np.stack(out)
