"""Conventional codecs through PyAV, for fair comparisons: the strongest anchors we know.

Each clip is coded as one closed GOP (an intra frame, then inter frames), 4:2:0 8-bit, and only the
raw packet bytes are counted (no container; `BaselineResult.sei_bytes` says how many of them are
the SEI settings text x264 and x265 write, which a decoder ignores). Matched-bpp comparisons sweep
the codec's CRF down to its floor (its lowest-rate setting: CRF 51 for x264/x265, CRF 63 for
SVT-AV1) and interpolate quality at the wanted bpp.

Anchors (`BASELINES`): x264 veryslow, x265 veryslow, SVT-AV1 preset 4 (its default tune),
SVT-AV1 at the setting our inter GOP fallback codes with (core.gop_av1: preset 2, tune=0), and each
of them at half resolution (`NAME-half`): the clip shrunk to half its size (area filter), coded,
decoded and upscaled back to the source size (Lanczos-3); the upscale is a decoder-side step, the
stream carries the half-size picture only, and bpp is per source pixel.

Colour: every anchor gets the conversion our own codecs use (`keyframes.av1_intra`: full-range BT.601,
chroma averaged over 2x2, centre-sited (9,3,3,1)/16 upsampling, in integers), and its streams say
full range. swscale's default (limited-range BT.601) caps the anchors at their high-quality end, a
loss that belongs to the conversion, not to the codec (bgslibrary_road_cam, 10 frames at 640x360,
svtav1-p2 CRF 20: 47.4 dB limited, 50.1 dB full range, for 8 % more bytes).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from PIL import Image

from evc_archive.core import gop_av1
from evc_archive.core.keyframes.av1_intra import coded_size, rgb_frame, video_frame

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration per encoder at its default level

PARAMS_OPTION = {"libx264": "x264-params", "libx265": "x265-params", "libsvtav1": "svtav1-params"}


@dataclass(frozen=True)
class BaselineCodec:
    """One anchor: an encoder at one preset and parameters, coded at full or half size."""

    name: str
    encoder: str
    decoder: str
    preset_options: tuple[tuple[str, str], ...]
    crf_range: tuple[int, int]  # (best quality swept, the floor: the codec's lowest-rate CRF)
    params: str = ""  # encoder parameters (x264-params / x265-params / svtav1-params), after keyint
    scale: int = 1  # 2: coded at half size, upscaled to the source size after decoding
    about: str = ""  # the setting, for --help
    sweep_s: float = 0.0  # its cost: seconds for a sweep of one 128x128x30 GOP, 2 CPU cores (2026-12-02)

    @property
    def floor(self) -> int:
        """The lowest-rate CRF: every sweep codes it."""
        return self.crf_range[1]

    def coded_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) the codec codes for a source of that size (before padding)."""
        return max(1, -(-height // self.scale)), max(1, -(-width // self.scale))


def _half(spec: BaselineCodec, sweep_s: float) -> BaselineCodec:
    return dataclasses.replace(spec, name=f"{spec.name}-half", scale=2, sweep_s=sweep_s,
                               about=f"{spec.about} at half size, Lanczos-upscaled after decoding")


_FULL_SIZE = (
    BaselineCodec("x264", "libx264", "h264", (("preset", "veryslow"),), (18, 51), about="x264 veryslow", sweep_s=7),
    BaselineCodec("x265", "libx265", "hevc", (("preset", "veryslow"),), (18, 51), "log-level=error",
                  about="x265 veryslow", sweep_s=22),
    BaselineCodec("svtav1", "libsvtav1", "libdav1d", (("preset", "4"),), (20, 63), about="SVT-AV1 preset 4",
                  sweep_s=2.5),
    BaselineCodec("svtav1-p2", "libsvtav1", "libdav1d", (("preset", str(gop_av1.PRESET)),), (20, 63),
                  gop_av1.SVT_PARAMS, about=f"SVT-AV1 preset {gop_av1.PRESET} {gop_av1.SVT_PARAMS} (the inter GOP "
                                            "fallback's setting)", sweep_s=5),
)
BASELINES: dict[str, BaselineCodec] = {s.name: s for s in (*_FULL_SIZE, *map(_half, _FULL_SIZE, (0.7, 2.6, 1.4, 2.7)))}


@dataclass(frozen=True)
class BaselineResult:
    codec: str
    crf: int
    bytes: int  # every raw packet byte (SEI included)
    frames: np.ndarray  # (n,H,W,3) uint8, decoded (and upscaled to the source size for a half-size anchor)
    sei_bytes: int = 0  # H.264/HEVC SEI NAL units (x264's and x265's settings text): not needed to decode
    coded_size: tuple[int, int] | None = None  # (height, width) the codec coded, before padding

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


# even widths where the bundled libx265 (veryslow) corrupts its heap and aborts the process
# (measured 2026-12-02: 34-48 abort, 32 and 50-128 do not; the height does not matter)
X265_UNSAFE_WIDTHS = range(34, 49, 2)


X265_MIN_SIDE = 16  # libx265 refuses to open below 16 pixels a side


def _pad(frames: np.ndarray, encoder: str) -> np.ndarray:
    """Edge-pad to even sides (4:2:0); x265 pictures to at least 16x16, and of an unsafe width to 64 columns."""
    _, h, w, _ = frames.shape
    h_pad, w_pad = h + h % 2, w + w % 2
    if encoder == "libx265":
        h_pad, w_pad = max(h_pad, X265_MIN_SIDE), max(w_pad, X265_MIN_SIDE)
        w_pad = 64 if w_pad in X265_UNSAFE_WIDTHS else w_pad
    return np.pad(frames, ((0, 0), (0, h_pad - h), (0, w_pad - w), (0, 0)), mode="edge")


def _resize(frames: np.ndarray, height: int, width: int, resample: int) -> np.ndarray:
    """(n,h,w,3) uint8 -> (n,height,width,3) uint8, per frame with PIL's `resample` filter."""
    return np.stack([np.asarray(Image.fromarray(f).resize((width, height), resample)) for f in frames])


def _encoder_options(spec: BaselineCodec, crf: int, gop: int) -> dict[str, str]:
    """The encoder's options: preset, CRF, one closed GOP of `gop` frames (no scene cuts), params."""
    keyint = f"keyint={gop}" if spec.encoder == "libsvtav1" else f"keyint={gop}:min-keyint={gop}:scenecut=0"
    return {**dict(spec.preset_options), "crf": str(crf),
            PARAMS_OPTION[spec.encoder]: ":".join(p for p in (keyint, spec.params) if p)}


def _code(frames: np.ndarray, spec: BaselineCodec, crf: int, fps: Fraction) -> tuple[list, np.ndarray]:
    """frames (n,h,w,3) uint8 -> (packets, decoded (n,h,w,3) uint8): one closed GOP."""
    n, h, w, _ = frames.shape
    padded = _pad(frames, spec.encoder)
    enc = av.CodecContext.create(spec.encoder, "w")
    ph, pw = padded.shape[1:3]
    enc.height, enc.width = coded_size(ph, pw)  # video_frame edge-pads to at least 8x8
    enc.pix_fmt = "yuv420p"
    enc.color_range = av.video.reformatter.ColorRange.JPEG  # full range, as the planes are
    enc.time_base = 1 / Fraction(fps)
    enc.framerate = Fraction(fps)
    enc.gop_size = max(n, 1)
    enc.options = _encoder_options(spec, crf, max(n, 1))
    packets = []
    for i, rgb in enumerate(padded):
        packets.extend(enc.encode(video_frame(rgb, i)))
    packets.extend(enc.encode(None))
    dec = av.CodecContext.create(spec.decoder, "r")
    decoded = [f for p in packets for f in dec.decode(p)] + list(dec.decode(None))
    if len(decoded) != n:
        raise RuntimeError(f"{spec.name} returned {len(decoded)} frames for {n}")
    return packets, np.stack([rgb_frame(f, ph, pw)[:h, :w] for f in decoded])


def encode_baseline(frames: np.ndarray, codec: str, crf: int, fps: Fraction = Fraction(25)) -> BaselineResult:
    """frames (n,H,W,3) uint8 -> one closed GOP at `crf`; returns raw packet bytes and the decode at
    (n,H,W,3) (a half-size anchor: area-shrunk before coding, Lanczos-upscaled after decoding)."""
    spec = BASELINES[codec]
    _, h, w, _ = frames.shape
    ch, cw = spec.coded_size(h, w)
    coded = frames if (ch, cw) == (h, w) else _resize(frames, ch, cw, Image.BOX)
    packets, decoded = _code(coded, spec, crf, fps)
    out = decoded if (ch, cw) == (h, w) else _resize(decoded, h, w, Image.LANCZOS)
    family = {"libx264": "x264", "libx265": "x265"}.get(spec.encoder, "av1")
    sei = sum(sei_bytes(bytes(p), family) for p in packets)
    return BaselineResult(codec, crf, sum(p.size for p in packets), out, sei, (ch, cw))


def sweep_crfs(codec: str, step: int = 3) -> list[int]:
    """The CRFs a sweep codes, ascending: every `step`-th down from the codec's floor (so the floor,
    the lowest rate it has, is always coded) and the best-quality end of its range."""
    lo, hi = BASELINES[codec].crf_range
    return sorted(set(range(hi, lo - 1, -step)) | {lo})


def crf_sweep(frames: np.ndarray, codec: str, crfs: list[int] | None = None) -> list[BaselineResult]:
    """Results at several CRFs (default: sweep_crfs)."""
    return [encode_baseline(frames, codec, c) for c in crfs or sweep_crfs(codec)]


def rate_window(bpps: list[float], targets: tuple[float, ...] | list[float]) -> list[int]:
    """Indices of the sweep points whose bpp lies in the span interpolation near the targets reads:
    from the second point below the lowest target (so a rate a little under a target still has
    a bracket) up to the first point at or above the highest. The reported metrics (VGG16 passes,
    ~100x the cost of an encode at 128x128) are scored on these points only."""
    order = sorted(range(len(bpps)), key=lambda i: bpps[i])
    below = [i for i in order if bpps[i] < min(targets)]
    above = [i for i in order if bpps[i] >= max(targets)]
    lo = bpps[below[-2:][0]] if below else -np.inf
    hi = bpps[above[0]] if above else np.inf
    return [i for i in range(len(bpps)) if lo <= bpps[i] <= hi]


def interpolate_at(bpps: list[float], values: list[float | None], target: float) -> float | None:
    """Linear interpolation of `values` at `target` on a log-bpp axis; None outside the range
    (points whose value is None, outside a `rate_window`, are left out)."""
    kept = [(b, v) for b, v in zip(bpps, values) if v is not None]
    if not kept:
        return None
    pairs = sorted((float(np.log(b)), v) for b, v in kept)
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    x = float(np.log(target))
    if x < xs[0] or x > xs[-1]:
        return None
    return float(np.interp(x, xs, ys))
