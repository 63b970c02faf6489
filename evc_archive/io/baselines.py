"""Conventional codecs through PyAV, for fair comparisons: x264, x265 and SVT-AV1.

Each clip is coded as one closed GOP (an intra frame, then inter frames) at the codec's best
practical preset, and only the raw packet bytes are counted (no container). Matched-bpp
comparisons sweep the codec's CRF and interpolate quality at the wanted bpp.

Presets (documented choice: slowest that is still practical on 2 cores):
    x264 veryslow, x265 veryslow, SVT-AV1 preset 4; 4:2:0 8-bit, which is what they are used at.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration per encoder at its default level


@dataclass(frozen=True)
class BaselineCodec:
    name: str
    encoder: str
    decoder: str
    preset_options: tuple[tuple[str, str], ...]
    crf_range: tuple[int, int]


BASELINES: dict[str, BaselineCodec] = {
    "x264": BaselineCodec("x264", "libx264", "h264", (("preset", "veryslow"),), (18, 51)),
    "x265": BaselineCodec("x265", "libx265", "hevc", (("preset", "veryslow"), ("x265-params", "log-level=error")), (18, 51)),
    "svtav1": BaselineCodec("svtav1", "libsvtav1", "libdav1d", (("preset", "4"),), (20, 63)),
}


@dataclass(frozen=True)
class BaselineResult:
    codec: str
    crf: int
    bytes: int
    frames: np.ndarray  # (n,H,W,3) uint8, decoded
    sei_bytes: int = 0  # H.264/HEVC SEI NAL units (x264's and x265's settings text): not needed to decode

    def bpp(self, width: int, height: int) -> float:
        return self.bytes * 8 / (len(self.frames) * width * height)

    def essential_bpp(self, width: int, height: int) -> float:
        """bpp without the SEI messages a decoder ignores (a fairer count at very low rates)."""
        return (self.bytes - self.sei_bytes) * 8 / (len(self.frames) * width * height)


def sei_bytes(data: bytes, codec: str) -> int:
    """Bytes of SEI NAL units (start code included) in an Annex B H.264/HEVC stream; 0 for AV1."""
    if codec not in ("x264", "x265"):
        return 0
    starts = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i)
        i = data.find(b"\x00\x00\x01", i + 3)
    total = 0
    for k, s in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(data)
        if end > s + 3 and k + 1 < len(starts) and data[end - 1] == 0:
            end -= 1  # a 4-byte start code's leading zero belongs to the next unit
        header = data[s + 3] if s + 3 < len(data) else 0
        kind = header & 0x1F if codec == "x264" else (header >> 1) & 0x3F
        if (codec == "x264" and kind == 6) or (codec == "x265" and kind in (39, 40)):
            total += end - s
    return total


def _even_pad(frames: np.ndarray) -> np.ndarray:
    n, h, w, _ = frames.shape
    return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def encode_baseline(frames: np.ndarray, codec: str, crf: int, fps: Fraction = Fraction(25)) -> BaselineResult:
    """frames (n,H,W,3) uint8 -> one closed GOP at `crf`; returns raw packet bytes and the decode."""
    spec = BASELINES[codec]
    n, h, w, _ = frames.shape
    padded = _even_pad(frames)
    ph, pw = padded.shape[1:3]
    enc = av.CodecContext.create(spec.encoder, "w")
    enc.width, enc.height, enc.pix_fmt = pw, ph, "yuv420p"
    enc.time_base = 1 / Fraction(fps)
    enc.framerate = Fraction(fps)
    enc.gop_size = max(n, 1)
    opts = dict(spec.preset_options)
    opts["crf"] = str(crf)
    if spec.encoder == "libx264":
        opts["x264-params"] = "keyint=%d:min-keyint=%d:scenecut=0" % (max(n, 1), max(n, 1))
    elif spec.encoder == "libx265":
        opts["x265-params"] += ":keyint=%d:min-keyint=%d:scenecut=0" % (max(n, 1), max(n, 1))
    elif spec.encoder == "libsvtav1":
        opts["svtav1-params"] = "keyint=%d" % max(n, 1)
    enc.options = opts
    packets = []
    for i, rgb in enumerate(padded):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        packets.extend(enc.encode(frame))
    packets.extend(enc.encode(None))
    total = sum(p.size for p in packets)
    sei = sum(sei_bytes(bytes(p), codec) for p in packets)
    dec = av.CodecContext.create(spec.decoder, "r")
    decoded = []
    for p in packets:
        decoded.extend(dec.decode(p))
    decoded.extend(dec.decode(None))
    out = np.stack([f.to_ndarray(format="rgb24")[:h, :w] for f in decoded])
    if len(out) != n:
        raise RuntimeError(f"{codec} returned {len(out)} frames for {n}")
    return BaselineResult(codec, crf, total, out, sei)


def crf_sweep(frames: np.ndarray, codec: str, crfs: list[int] | None = None) -> list[BaselineResult]:
    """Results at several CRFs (default: every 3rd CRF over the codec's range)."""
    spec = BASELINES[codec]
    crfs = crfs or list(range(spec.crf_range[0], spec.crf_range[1] + 1, 3))
    return [encode_baseline(frames, codec, c) for c in crfs]


def interpolate_at(bpps: list[float], values: list[float], target: float) -> float | None:
    """Linear interpolation of `values` at `target` on a log-bpp axis; None outside the range."""
    pairs = sorted(zip(np.log(bpps), values))
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    x = float(np.log(target))
    if x < xs[0] or x > xs[-1]:
        return None
    return float(np.interp(x, xs, ys))
