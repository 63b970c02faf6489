"""Block motion, bit-exact on any machine: the motion-extrapolation predictor's (kind id 2,
core.predictors.motion_extrapolation) algorithms, which the hint predictors share (block matching,
dense fields, the integer warp).

From two frames the extrapolation estimates one motion vector per block (integer block matching
on luma, with a small penalty on long vectors so that flat or noisy blocks stay still), smooths the
vector field with a 3x3 median, interpolates it to a dense field and warps the last frame forward by
j times that field for the j-th generated frame (constant-velocity extrapolation).

Determinism: luma, block costs, vectors and the warp are integers (numpy int64); the dense field is
one bilinear interpolation in float64 whose every operation is a single IEEE-rounded + or * (no
reductions, no transcendental functions), quantised to 1/16 pixel before the integer bilinear warp.
The result is the same bits on any CPU and thread count; no model file, no randomness (the seed and
step count are ignored).

Frames are (H,W,3) uint8 numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SUBPEL = 16  # warp precision: 1/16 pixel


@dataclass(frozen=True)
class MotionConfig:
    """Everything that determines the predictor's output (its hash covers all of it)."""

    block: int = 16  # block size, in analysis pixels
    search: int = 4  # search range +-search, in analysis pixels
    analysis_side: int = 160  # frames whose long side exceeds this are box-downscaled by an integer factor
    penalty: int = 1  # cost per block pixel per unit of |v|_1 (luma levels): bias toward still
    median: bool = False  # 3x3 median of the vector field (off: it erases small moving objects)

    def key(self) -> bytes:
        return (f"evc-archive/motion-extrapolation/1:block={self.block}:search={self.search}:"
                f"side={self.analysis_side}:penalty={self.penalty}:median={int(self.median)}").encode()


def luma(frame: np.ndarray) -> np.ndarray:
    """(H,W,3) uint8 -> (H,W) int64 BT.601 luma, 0..255."""
    f = frame.astype(np.int64)
    return (77 * f[..., 0] + 150 * f[..., 1] + 29 * f[..., 2] + 128) >> 8


def analysis_factor(height: int, width: int, side: int) -> int:
    """Integer downscale factor that brings the long side to at most `side`."""
    return max(1, -(-max(height, width) // side))


def box_downscale(y: np.ndarray, s: int) -> np.ndarray:
    """(H,W) int -> (ceil(H/s),ceil(W/s)) int, mean of s x s boxes (edge-replicated), rounded down."""
    if s == 1:
        return y
    h, w = y.shape
    y = np.pad(y, ((0, (-h) % s), (0, (-w) % s)), mode="edge")
    return y.reshape(y.shape[0] // s, s, y.shape[1] // s, s).sum(axis=(1, 3)) // (s * s)


def _candidates(search: int) -> list[tuple[int, int]]:
    """All vectors within +-search, shortest first (ties broken by (dy,dx)): argmin keeps the shortest."""
    r = range(-search, search + 1)
    return sorted(((dy, dx) for dy in r for dx in r), key=lambda v: (abs(v[0]) + abs(v[1]), v))


def block_vectors(prev: np.ndarray, last: np.ndarray, cfg: MotionConfig) -> np.ndarray:
    """Luma (h,w) of the two last frames -> (nby,nbx,2) int64 vectors (dy,dx): the content of block
    b of `last` sat at b - v in `prev`, so it moves by +v per frame."""
    b, r = cfg.block, cfg.search
    h, w = last.shape
    ph, pw = (-h) % b, (-w) % b
    last = np.pad(last, ((0, ph), (0, pw)), mode="edge")
    prev = np.pad(prev, ((r, r + ph), (r, r + pw)), mode="edge")
    hh, ww = last.shape
    nby, nbx = hh // b, ww // b
    cands = _candidates(r)
    costs = np.empty((len(cands), nby, nbx), dtype=np.int64)
    for c, (dy, dx) in enumerate(cands):
        shifted = prev[r - dy : r - dy + hh, r - dx : r - dx + ww]
        sad = np.abs(last - shifted).reshape(nby, b, nbx, b).sum(axis=(1, 3))
        costs[c] = sad + cfg.penalty * b * b * (abs(dy) + abs(dx))
    best = np.argmin(costs, axis=0)  # first minimum: the shortest vector among equals
    vectors = np.asarray(cands, dtype=np.int64)[best]  # (nby,nbx,2)
    if cfg.median and nby * nbx > 1:
        padded = np.pad(vectors, ((1, 1), (1, 1), (0, 0)), mode="edge")
        stack = np.stack([padded[i : i + nby, j : j + nbx] for i in range(3) for j in range(3)])
        vectors = np.sort(stack, axis=0)[4]
    return vectors


def dense_field(vectors: np.ndarray, height: int, width: int, block_px: int) -> np.ndarray:
    """Block-centre vectors (nby,nbx,2), blocks of `block_px` frame pixels -> (H,W,2) float64 by
    bilinear interpolation (edge-clamped)."""
    nby, nbx, _ = vectors.shape

    def axis(n_px: int, n_blocks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = (np.arange(n_px, dtype=np.float64) + 0.5) / block_px - 0.5
        pos = np.clip(pos, 0.0, n_blocks - 1.0)
        i0 = np.floor(pos).astype(np.int64)
        i1 = np.minimum(i0 + 1, n_blocks - 1)
        return i0, i1, pos - i0

    y0, y1, fy = axis(height, nby)
    x0, x1, fx = axis(width, nbx)
    v = vectors.astype(np.float64)
    fy, fx = fy[:, None, None], fx[None, :, None]
    top = v[y0][:, x0] * (1.0 - fx) + v[y0][:, x1] * fx
    bottom = v[y1][:, x0] * (1.0 - fx) + v[y1][:, x1] * fx
    return top * (1.0 - fy) + bottom * fy


def warp(frame: np.ndarray, displacement: np.ndarray) -> np.ndarray:
    """frame (H,W,3) uint8 moved by displacement (H,W,2) (dy,dx) pixels -> (H,W,3) uint8: output
    pixel p takes frame at p - displacement, bilinear at 1/16 pixel, integers, edge-clamped."""
    h, w, _ = frame.shape
    d = np.floor(displacement * SUBPEL + 0.5).astype(np.int64)
    sy = np.arange(h, dtype=np.int64)[:, None] * SUBPEL - d[..., 0]
    sx = np.arange(w, dtype=np.int64)[None, :] * SUBPEL - d[..., 1]
    sy = np.clip(sy, 0, (h - 1) * SUBPEL)
    sx = np.clip(sx, 0, (w - 1) * SUBPEL)
    y0, x0 = sy // SUBPEL, sx // SUBPEL
    fy, fx = (sy - y0 * SUBPEL)[..., None], (sx - x0 * SUBPEL)[..., None]
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    f = frame.astype(np.int64)
    acc = ((SUBPEL - fy) * (SUBPEL - fx) * f[y0, x0] + (SUBPEL - fy) * fx * f[y0, x1]
           + fy * (SUBPEL - fx) * f[y1, x0] + fy * fx * f[y1, x1])
    return ((acc + SUBPEL * SUBPEL // 2) // (SUBPEL * SUBPEL)).astype(np.uint8)


def motion_field(prev: np.ndarray, last: np.ndarray, cfg: MotionConfig) -> np.ndarray:
    """Two frames (H,W,3) uint8 -> per-frame motion (H,W,2) float64, in frame pixels."""
    h, w, _ = last.shape
    s = analysis_factor(h, w, cfg.analysis_side)
    vectors = block_vectors(box_downscale(luma(prev), s), box_downscale(luma(last), s), cfg) * s
    return dense_field(vectors, h, w, cfg.block * s)
