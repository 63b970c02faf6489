"""AV1 intra keyframe codec (kind id 2): each coded frame is one AV1 key frame, encoded by SVT-AV1
and decoded by dav1d, both through PyAV. Weightless: nothing to ship, nothing to train.

Payload: the AV1 OBUs of one key frame (sequence header + frame), without the leading temporal
delimiter `12 00` (the decoder puts it back). 4:2:0, 8 bit, the frame edge-padded to even sizes
(at least 8x8) before coding and cropped after.

Determinism: AV1 decoding is integer-exact by specification, so the YUV planes dav1d returns are
the same bits everywhere. The colour conversion is ours, not swscale's (whose SIMD paths round
differently between CPUs): full-range BT.601 in 16-bit fixed point, chroma averaged over 2x2 at
encode and upsampled with the (9,3,3,1)/16 centre-sited filter at decode, all numpy integers.
The encoder's reconstruction is the decode of the exact payload bytes (keyframes.base.ImageCodec).

Quality levels map to SVT-AV1 CRF values (one intra frame): level 1 = fewest bits. The subjective
tune and still-picture mode, at a preset that follows the frame's area (`preset_for`): preset 1 below
640x360 (on 12 held-out 128x128 frames 7-10 % lower LPIPS at the same bytes than preset 4 with the
PSNR tune, and 3-3.5 % lower than preset 3: docs/benchmarks/av1_tuning.md), preset 3 from 640x360 up
(there within ~1 % of preset 1's bytes and LPIPS at a quarter of its time: scale_notes.md).
The CRF table, preset and tuning matter only to the encoder; the decoder needs none of them, so none
is in the hash, which names the payload format.
"""

from __future__ import annotations

import hashlib
import os
from fractions import Fraction

import numpy as np
import torch

from evc_archive.core.errors import BitstreamError
from evc_archive.core.registry import register_keyframe_codec

# level -> CRF. On 12 held-out 128x128 frames: 87 .. 1680 bytes a frame (0.04 .. 0.82 bpp), the range
# a 30-frame segment at 0.02 .. 0.1 bpp can spend on its few coded frames. Every 2 CRF (25 levels),
# which rate control uses more fully than 13 levels every 4 CRF (docs/benchmarks/keyframe_levels*.md).
# The level is informational in a stream (the decoder needs no CRF), so streams written with the
# 13-level table decode unchanged.
CRF_BY_QUALITY: dict[int, int] = {q: 63 - 2 * (q - 1) for q in range(1, 26)}  # 63, 61, ..., 15
PRESET = 1  # below LARGE_FRAME_PIXELS
LARGE_FRAME_PRESET = 3
LARGE_FRAME_PIXELS = 640 * 360
# encoder-only tuning (the decoder needs none of it): subjective tune, still-picture mode
SVT_PARAMS = "keyint=1:tune=0:avif=1"
TEMPORAL_DELIMITER = b"\x12\x00"
MIN_SIDE = 8
FORMAT_KEY = b"evc-archive/keyframe-av1-intra/1:obus-no-td:yuv420p8:bt601-full-q16:chroma-2x2-avg/9331"


def rgb_to_yuv420(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(H,W,3) uint8, H and W even -> Y (H,W), Cb, Cr (H/2,W/2) uint8, full-range BT.601."""
    f = frame.astype(np.int64)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = (19595 * r + 38470 * g + 7471 * b + 32768) >> 16
    cb = (-11059 * r - 21709 * g + 32768 * b + (128 << 16) + 32768) >> 16
    cr = (32768 * r - 27439 * g - 5329 * b + (128 << 16) + 32768) >> 16

    def half(c: np.ndarray) -> np.ndarray:
        c = np.clip(c, 0, 255)
        return (c[0::2, 0::2] + c[0::2, 1::2] + c[1::2, 0::2] + c[1::2, 1::2] + 2) >> 2

    return tuple(np.clip(p, 0, 255).astype(np.uint8) for p in (y, half(cb), half(cr)))  # type: ignore[return-value]


def upsample_chroma(c: np.ndarray) -> np.ndarray:
    """(h,w) uint8 chroma sited at 2x2 block centres -> (2h,2w) int64, (9,3,3,1)/16, edges clamped."""
    p = np.pad(c.astype(np.int64), 1, mode="edge")
    h, w = c.shape
    centre = p[1:-1, 1:-1]
    out = np.empty((2 * h, 2 * w), dtype=np.int64)
    for dy, sy in ((0, -1), (1, 1)):  # output row parity -> neighbour row offset
        for dx, sx in ((0, -1), (1, 1)):
            vert = p[1 + sy : 1 + sy + h, 1:-1]
            horiz = p[1:-1, 1 + sx : 1 + sx + w]
            diag = p[1 + sy : 1 + sy + h, 1 + sx : 1 + sx + w]
            out[dy::2, dx::2] = (9 * centre + 3 * vert + 3 * horiz + diag + 8) >> 4
    return out


def yuv420_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    """Y (H,W), Cb, Cr (H/2,W/2) uint8 -> (H,W,3) uint8, the exact inverse pipeline of the encoder's."""
    yy = y.astype(np.int64) << 16
    u, v = upsample_chroma(cb) - 128, upsample_chroma(cr) - 128
    r = (yy + 91881 * v + 32768) >> 16
    g = (yy - 22554 * u - 46802 * v + 32768) >> 16
    b = (yy + 116130 * u + 32768) >> 16
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def coded_size(height: int, width: int) -> tuple[int, int]:
    """The size actually coded: even, at least MIN_SIDE."""
    return max(MIN_SIDE, height + height % 2), max(MIN_SIDE, width + width % 2)


def strip_delimiter(packet: bytes) -> bytes:
    """An AV1 temporal unit without its leading temporal delimiter OBU (decoders do not need it)."""
    return packet[len(TEMPORAL_DELIMITER):] if packet.startswith(TEMPORAL_DELIMITER) else packet


def video_frame(rgb: np.ndarray, pts: int):
    """(H,W,3) uint8 -> an av.VideoFrame, yuv420p of the coded size (edge-padded), our colour conversion."""
    import av

    h, w, _ = rgb.shape
    ch, cw = coded_size(h, w)
    padded = np.pad(rgb, ((0, ch - h), (0, cw - w), (0, 0)), mode="edge")
    vf = av.VideoFrame(cw, ch, "yuv420p")
    for plane, data in zip(vf.planes, rgb_to_yuv420(padded)):
        buf = np.zeros((data.shape[0], plane.line_size), dtype=np.uint8)
        buf[:, : data.shape[1]] = data
        plane.update(buf.tobytes())
    vf.pts = pts
    return vf


def rgb_frame(frame, height: int, width: int) -> np.ndarray:
    """A decoded yuv420p av.VideoFrame of the coded size -> (height,width,3) uint8 (cropped)."""
    ch, cw = coded_size(height, width)
    planes = []
    for plane, (ph, pw) in zip(frame.planes, ((ch, cw), (ch // 2, cw // 2), (ch // 2, cw // 2))):
        arr = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)
        planes.append(arr[:ph, :pw])
    return np.ascontiguousarray(yuv420_to_rgb(*planes)[:height, :width])


def preset_for(height: int, width: int) -> int:
    """The SVT-AV1 preset a frame of this size is coded at: slower where it pays, faster from 360p up."""
    return LARGE_FRAME_PRESET if height * width >= LARGE_FRAME_PIXELS else PRESET


def svtav1_encoder(width: int, height: int, gop: int, preset: int, crf: float, params: str):
    """A libsvtav1 encoder context for yuv420p frames of (coded) size width x height. A fractional
    `crf` (quarter steps) goes through SVT-AV1's own parameters: FFmpeg's crf option is an integer."""
    import av

    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its configuration to stderr otherwise
    enc = av.CodecContext.create("libsvtav1", "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.time_base, enc.framerate, enc.gop_size = Fraction(1, 25), Fraction(25), gop
    if float(crf).is_integer():
        enc.options = {"preset": str(preset), "crf": str(int(crf)), "svtav1-params": params}
    else:
        enc.options = {"preset": str(preset), "svtav1-params": f"{params}:crf={crf:g}"}
    return enc


class AV1IntraCodec:
    """A keyframes.base.ImageCodec: qualities, encode, decode, content_hash; weightless."""

    model_id = 2
    content_hash = hashlib.sha256(FORMAT_KEY).digest()

    def __init__(self, crf_by_quality: dict[int, int] | None = None, preset: int | None = None,
                 device: str = "cpu"):
        self.crf_by_quality = dict(sorted((crf_by_quality or CRF_BY_QUALITY).items()))
        self.preset = preset  # None: by the frame's size (preset_for)
        self.device = device  # frames are coded on the CPU whatever the device

    @property
    def qualities(self) -> tuple[int, ...]:
        return tuple(self.crf_by_quality)

    def _crf(self, quality: int) -> int:
        if quality not in self.crf_by_quality:
            raise ValueError(f'Invalid quality "{quality}": this codec has {self.qualities}')
        return self.crf_by_quality[quality]

    def encode(self, frame: torch.Tensor, quality: int) -> bytes:
        """frame (H,W,3) uint8 -> payload bytes (one AV1 key frame)."""
        crf = self._crf(quality)
        h, w, _ = frame.shape
        ch, cw = coded_size(h, w)
        vf = video_frame(frame.cpu().numpy(), 0)
        preset = preset_for(h, w) if self.preset is None else self.preset
        enc = svtav1_encoder(cw, ch, 1, preset, crf, SVT_PARAMS)
        return strip_delimiter(b"".join(bytes(p) for p in [*enc.encode(vf), *enc.encode(None)]))

    def decode(self, payload: bytes, quality: int, height: int, width: int) -> torch.Tensor:
        """payload -> frame (height,width,3) uint8 on the CPU (the quality is not needed)."""
        import av

        ch, cw = coded_size(height, width)
        dec = av.CodecContext.create("libdav1d", "r")
        try:
            frames = [*dec.decode(av.Packet(TEMPORAL_DELIMITER + bytes(payload))), *dec.decode(None)]
        except av.error.FFmpegError as exc:
            raise BitstreamError(f"AV1 keyframe payload does not decode ({exc.__class__.__name__})") from None
        if len(frames) != 1 or (frames[0].height, frames[0].width) != (ch, cw) or frames[0].format.name != "yuv420p":
            raise BitstreamError("AV1 keyframe payload is not one 4:2:0 8-bit frame of the stream's size (damaged)")
        return torch.from_numpy(rgb_frame(frames[0], height, width))


@register_keyframe_codec(2, "svtav1", "keyframe-av1-intra", default_quality=15, bit_exact=True,
                         summary="AV1 intra frames through SVT-AV1 / dav1d, qualities 1-25 (the default)")
def build(weights: str | None, device: str) -> AV1IntraCodec:
    return AV1IntraCodec(device=device)
