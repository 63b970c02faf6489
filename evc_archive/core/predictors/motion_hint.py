"""Global-motion-hint predictor (kind id 3, decode-only): copy-last-frame steered by a few bytes
of side information per call that the encoder chooses. Restore-hint (kind 6) moves frames the same
way and beats it (docs/benchmarks/ablation.md).

Per predictor call the stream carries one hint (bitstream version 2): empty = still (exactly
copy-last-frame), else a global velocity (dy, dx) in quarter pixels per frame as two zigzag
varints (2-4 bytes). Generated frame j (1..F) is the last decoded frame moved by j * velocity with
motion.warp (integer 1/16-pixel bilinear, edges clamped), so the decoder's output is the same bits
everywhere. The encoder, which sees the source, offers three candidates per call (still; the global
shift from the last decoded frame to the source's next frame; the shift to the source's last target
frame divided by its distance) and encoder.predict_call keeps the one with the lowest mean LPIPS.
A call only costs its hint when the loop accepts at least one of its frames.

Shapes: context (k,H,W,3) uint8 -> (F,H,W,3) uint8.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from evc_archive.core import varint
from evc_archive.core.errors import BitstreamError
from evc_archive.core.motion import analysis_factor, box_downscale, luma, warp
from evc_archive.core.predictors.base import repeat_last
from evc_archive.core.registry import register_predictor
from evc_archive.core.subpel import QUARTER, shift_frame  # QUARTER: velocity units per pixel

FORMAT_KEY = b"evc-archive/global-motion-hint/1:zigzag-quarter-pel-velocity:warp-1/16-bilinear-clamp"


def zigzag(x: int) -> int:
    return 2 * x if x >= 0 else -2 * x - 1


def unzigzag(z: int) -> int:
    return z // 2 if z % 2 == 0 else -(z + 1) // 2


def pack_velocity(dy: int, dx: int) -> bytes:
    """Quarter-pixel velocity -> hint bytes (empty for still)."""
    return b"" if dy == dx == 0 else varint.encode(zigzag(dy)) + varint.encode(zigzag(dx))


def unpack_velocity(hint: bytes) -> tuple[int, int]:
    if not hint:
        return 0, 0
    zy, pos = varint.decode(hint, 0)
    zx, pos = varint.decode(hint, pos)
    if pos != len(hint):
        raise BitstreamError("predictor hint has trailing bytes (damaged)")
    return unzigzag(zy), unzigzag(zx)


SAD_CHUNK = 1 << 21  # int16 differences per numpy call in sad_surface (4 MiB)


def sad_surface(a: np.ndarray, b: np.ndarray, r: int) -> np.ndarray:
    """(2r+1, 2r+1) float64: costs[dy + r, dx + r] = mean |b - a shifted by (dy, dx)| over b's
    interior (r px in from each edge), for int (hh,ww) luma planes. Integer sums, so the values are
    exact (np.mean of each window would give the same floats)."""
    hh, ww = a.shape
    inner = b[r:hh - r, r:ww - r].astype(np.int16)
    ih, iw = inner.shape
    windows = np.lib.stride_tricks.sliding_window_view(a.astype(np.int16), (ih, iw))  # [y0, x0] = a[y0:, x0:]
    side = 2 * r + 1
    rows = max(1, SAD_CHUNK // (side * ih * iw))  # rows of shifts per numpy call (bounded memory)
    sums = np.empty((side, side), dtype=np.int64)
    for y0 in range(0, side, rows):
        part = windows[y0:y0 + rows]
        sums[y0:y0 + rows] = np.abs(inner - part).sum(axis=(2, 3), dtype=np.int64)
    return sums[::-1, ::-1] / (ih * iw)  # [y0, x0] with y0 = r - dy, x0 = r - dx


def global_shift(src: np.ndarray, dst: np.ndarray, search: int, analysis_side: int = 160) -> tuple[float, float]:
    """Encoder only: (dy, dx) in pixels such that dst(p) ~ src(p - (dy, dx)), by exhaustive integer
    search of the mean absolute luma difference over the interior, then a parabolic sub-pixel fit."""
    h, w, _ = src.shape
    s = analysis_factor(h, w, analysis_side)
    a, b = box_downscale(luma(src), s), box_downscale(luma(dst), s)
    hh, ww = a.shape
    r = min(search // s, hh // 4, ww // 4)
    if r < 1:  # too small to tell motion from content
        return 0.0, 0.0
    costs = sad_surface(a, b, r)
    iy, ix = np.unravel_index(np.argmin(costs), costs.shape)

    def refine(c_minus: float, c0: float, c_plus: float) -> float:
        denom = c_minus - 2 * c0 + c_plus
        return 0.0 if denom <= 0 else float(np.clip((c_minus - c_plus) / (2 * denom), -0.5, 0.5))

    fy = refine(costs[iy - 1, ix], costs[iy, ix], costs[iy + 1, ix]) if 0 < iy < 2 * r else 0.0
    fx = refine(costs[iy, ix - 1], costs[iy, ix], costs[iy, ix + 1]) if 0 < ix < 2 * r else 0.0
    return (iy - r + fy) * s, (ix - r + fx) * s


def shift_hint(dy: float, dx: float, distance: int) -> bytes:
    """A shift of (dy, dx) pixels over `distance` frames -> the hint of that velocity."""
    return pack_velocity(int(round(dy * QUARTER / distance)), int(round(dx * QUARTER / distance)))


def velocity_hint(last: np.ndarray, target: np.ndarray, distance: int, search: int) -> bytes:
    """Encoder only: the hint of the global velocity that moves `last` onto `target`, `distance`
    frames ahead (search range `search` pixels per frame of distance)."""
    return shift_hint(*global_shift(last, target, search * distance), distance)


@dataclass
class GlobalMotionPredictor:
    """Copy-last-frame plus an encoder-chosen global velocity per call."""

    frames_per_call: int = 4
    search: int = 12  # encoder's search range, pixels (per target distance)
    interpolation: str = "bilinear"  # or "lanczos3" (core.subpel); kind 3 streams are bilinear
    fit_every_target: bool = False  # encoder only: more candidates per call (restore-hint uses them)
    model_id: int = 3
    context_frames: int = 1
    content_hash: bytes = hashlib.sha256(FORMAT_KEY).digest()

    def hint_candidates(self, context: torch.Tensor, targets: torch.Tensor,
                        shifts: dict[int, tuple[float, float]] | None = None) -> list[bytes]:
        """Encoder only: still, then the velocity measured to the first and last targets (or, with
        `fit_every_target`, to every target, and their least-squares fit), without repeats.
        `shifts` {distance: (dy, dx) px}: the shifts to use instead of measuring them from the last
        decoded frame (core.hint_search.SourceMotion's, from the source)."""
        last, tg = context[-1].numpy(), targets.numpy()
        distances = range(1, len(tg) + 1) if self.fit_every_target else sorted({1, len(tg)})
        if shifts is None:
            shifts = {m: global_shift(last, tg[m - 1], self.search * m) for m in distances}
        else:
            shifts = {m: shifts[m] for m in distances}
        hints = [shift_hint(dy, dx, m) for m, (dy, dx) in shifts.items()]
        if self.fit_every_target:  # the v minimising sum_m |shift_m - m v|^2
            norm = sum(m * m for m in shifts)
            hints.append(shift_hint(*(sum(m * shift[k] for m, shift in shifts.items()) / norm for k in (0, 1)), 1))
        out = [b""]
        for hint in hints:
            if hint not in out:
                out.append(hint)
        return out

    def predict(self, context: torch.Tensor, hint: bytes, seed: int, steps: int) -> torch.Tensor:
        """The last frame moved by the hint's velocity (empty hint: still, copy-last-frame)."""
        vy, vx = unpack_velocity(hint)
        if vy == vx == 0:
            return repeat_last(context, self.frames_per_call)
        frame = context[-1].numpy()
        if self.interpolation == "lanczos3":
            return torch.from_numpy(np.stack([shift_frame(frame, j * vy, j * vx)
                                              for j in range(1, self.frames_per_call + 1)]))
        h, w, _ = frame.shape
        out = []
        for j in range(1, self.frames_per_call + 1):
            d = np.empty((h, w, 2))
            d[..., 0], d[..., 1] = j * vy / QUARTER, j * vx / QUARTER  # exact: quarter-pixel multiples
            out.append(warp(frame, d))
        return torch.from_numpy(np.stack(out))


@register_predictor(3, "motion-hint", "global-motion-hint", takes_hints=True, bit_exact=True,
                    summary="copy-last moved by a global velocity the encoder picks and stores (0-4 bytes a call)")
def build(weights: str | None, frames_per_call: int, device: str) -> GlobalMotionPredictor:
    return GlobalMotionPredictor(frames_per_call=frames_per_call)
