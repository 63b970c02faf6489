"""Small synthetic videos made with PyAV itself, one per input format the video io tests cover."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

N = 30  # frames in each generated clip
# Irregular frame times (ms) for the variable-frame-rate clip: gaps from 10 ms to 240 ms.
VFR_PTS = [0, 40, 80, 100, 200, 210, 260, 400, 433, 466, 500, 600, 610, 620, 700,
           800, 840, 880, 1000, 1040, 1100, 1150, 1300, 1310, 1320, 1400, 1500, 1530, 1560, 1800]


def synthetic(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """(n, H, W, 3) uint8: shifting colour gradients plus a moving white square per frame."""
    y, x = np.mgrid[0:height, 0:width]
    out = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        out[i, ..., 0] = (x * 4 + i * 7 + seed) % 256
        out[i, ..., 1] = (y * 4 + i * 3) % 256
        out[i, ..., 2] = ((x + y) * 2 + i * 11) % 256
        r, c = (i * 2) % max(height - 6, 1), (i * 3) % max(width - 6, 1)
        out[i, r:r + 6, c:c + 6] = 255
    return out


def make_video(path: Path, codec: str, *, fmt: str | None = None, n: int = N, height: int = 48,
               width: int = 64, pix_fmt: str = "yuv420p", rate: int = 25, gop: int | None = None,
               pts: list[int] | None = None, time_base: Fraction | None = None,
               options: dict[str, str] | None = None) -> Path:
    """Encode synthetic(n, height, width) with PyAV; pts/time_base give hand-made frame times,
    options are the muxer's."""
    frames = synthetic(n, height, width)
    with av.open(str(path), "w", format=fmt, options=options or {}) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if gop is not None:
            stream.codec_context.gop_size = gop
        if time_base is not None:
            stream.codec_context.time_base = time_base
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = pts[i] if pts is not None else i
            if time_base is not None:
                frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@dataclass(frozen=True)
class Case:
    """One generated input file and what probing it must say."""

    file: str
    codec: str  # the encoder used to make it
    fmt: str | None = None
    height: int = 48
    width: int = 64
    pix_fmt: str = "yuv420p"
    gop: int | None = None
    vfr: bool = False
    decoder: str = ""  # the codec name probe_video reports
    max_mae: float = 25.0  # lossy codecs on this harsh pattern; ffv1/rawvideo only lose chroma


WEBM_CODEC = "libvpx-vp9" if "libvpx-vp9" in av.codecs_available else "libvpx"

CASES = {
    "mp4-h264-gop10": Case("gop10.mp4", "libx264", gop=10, decoder="h264"),
    "mkv-ffv1": Case("ffv1.mkv", "ffv1", decoder="ffv1"),
    "webm-vpx": Case("clip.webm", WEBM_CODEC,
                     decoder="vp9" if WEBM_CODEC == "libvpx-vp9" else "vp8"),
    "mov-h264": Case("clip.mov", "libx264", gop=10, decoder="h264"),
    "avi-mpeg4": Case("clip.avi", "mpeg4", gop=10, decoder="mpeg4"),
    "y4m-rawvideo": Case("clip.y4m", "rawvideo", fmt="yuv4mpegpipe", decoder="rawvideo"),
    "mp4-h264-10bit": Case("tenbit.mp4", "libx264", pix_fmt="yuv420p10le", gop=10, decoder="h264"),
    "mkv-ffv1-10bit": Case("tenbit.mkv", "ffv1", pix_fmt="yuv420p10le", decoder="ffv1"),
    "mkv-ffv1-odd-33x17": Case("odd.mkv", "ffv1", height=17, width=33, pix_fmt="yuv444p",
                               decoder="ffv1", max_mae=1.0),
    "mp4-h264-odd-33x17": Case("odd.mp4", "libx264", height=17, width=33, pix_fmt="yuv444p",
                               gop=10, decoder="h264"),
    "mp4-h264-vfr": Case("vfr.mp4", "libx264", gop=10, vfr=True, decoder="h264"),
    "mkv-h264-vfr": Case("vfr.mkv", "libx264", gop=10, vfr=True, decoder="h264"),
}


def make_case_videos(root: Path) -> dict[str, Path]:
    """Every Case encoded into ``root``, keyed like CASES."""
    out = {}
    for key, case in CASES.items():
        timing = dict(pts=VFR_PTS, time_base=Fraction(1, 1000)) if case.vfr else {}
        out[key] = make_video(root / case.file, case.codec, fmt=case.fmt, height=case.height,
                              width=case.width, pix_fmt=case.pix_fmt, gop=case.gop, **timing)
    return out


def assert_one_sentence(error: BaseException, *names: str) -> None:
    text = str(error)
    assert "\n" not in text and text.endswith("."), text
    assert "Traceback" not in text and "Errno" not in text, text
    for name in names:
        assert name in text, text
