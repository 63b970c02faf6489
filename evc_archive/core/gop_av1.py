"""Inter-coded segments: a whole segment as one closed AV1 group of pictures (SVT-AV1 encodes, dav1d
decodes, both through PyAV).

This is the segment mode rate control falls back to where conventional motion-compensated coding
beats the generative loop (static cameras at 0.05 bpp and up, docs/benchmarks/ablation.md): the
loop's coded frames are intra frames or residuals against a prediction, with no skip blocks and no
per-block motion; an AV1 inter GOP has both.

Payload: the AV1 OBUs of every frame in coding order with the temporal delimiters removed (dav1d
needs none: it splits frames by their frame headers). 4:2:0 8-bit, the same padding and the same
integer colour conversion as the AV1 intra keyframe codec (core.keyframes.av1_intra), so the decoded frames
are the same bits on every machine.
"""

from __future__ import annotations

import numpy as np
import torch

from evc_archive.core.errors import BitstreamError
from evc_archive.core.keyframes.av1_intra import coded_size, rgb_frame, strip_delimiter, svtav1_encoder, video_frame

# level -> CRF, level 1 = fewest bits, in quarter CRF steps (SVT-AV1 takes a fractional CRF: one
# quarter step is one quantiser index; near a target a whole CRF step costs 5-10 % more bytes, a
# quarter step 1-3 %). On the held-out 128x128x30 clips level 1 (CRF 63) takes 0.012-0.04 bpp.
# Streams from builds before 2026-12-07 counted whole CRF steps (CRF = 64 - level): the level is
# informational, the decoder needs none of it.
LEVELS_PER_CRF = 4
CRF_BY_LEVEL: dict[int, float] = {level: 63 - (level - 1) / LEVELS_PER_CRF for level in range(1, 162)}  # 63 .. 23
WHOLE_CRF_LEVELS: tuple[int, ...] = tuple(range(1, 162, LEVELS_PER_CRF))  # CRF 63, 62, ..., 23: the search's grid
PRESET = 2  # on two held-out clips 10-25 % lower LPIPS than preset 4 at the lowest levels, ~2x the time
SVT_PARAMS = "tune=0"  # the subjective tune (encoder only: the decoder needs no setting)


def encode_gop(frames: torch.Tensor, level: int, preset: int = PRESET) -> bytes:
    """frames (n,H,W,3) uint8 -> payload: one closed AV1 GOP (first frame a key frame)."""
    if level not in CRF_BY_LEVEL:
        raise ValueError(f'Invalid inter level "{level}": levels are 1..{len(CRF_BY_LEVEL)}')
    n, h, w, _ = frames.shape
    ch, cw = coded_size(h, w)
    enc = svtav1_encoder(cw, ch, n, preset, CRF_BY_LEVEL[level], f"keyint={n}:{SVT_PARAMS}")
    array = frames.cpu().numpy()
    packets = [p for i in range(n) for p in enc.encode(video_frame(array[i], i))]
    packets += enc.encode(None)
    return b"".join(strip_delimiter(bytes(p)) for p in packets)


def decode_gop(payload: bytes, frame_count: int, height: int, width: int) -> torch.Tensor:
    """payload -> (frame_count,height,width,3) uint8 on the CPU."""
    import av

    ch, cw = coded_size(height, width)
    dec = av.CodecContext.create("libdav1d", "r")
    try:
        frames = [*dec.decode(av.Packet(bytes(payload))), *dec.decode(None)]
    except av.error.FFmpegError as exc:
        raise BitstreamError(f"AV1 inter segment does not decode ({exc.__class__.__name__})") from None
    if len(frames) != frame_count or any((f.height, f.width, f.format.name) != (ch, cw, "yuv420p") for f in frames):
        raise BitstreamError(f"AV1 inter segment gave {len(frames)} frames of {frame_count} (damaged)")
    return torch.from_numpy(np.stack([rgb_frame(f, height, width) for f in frames]))
