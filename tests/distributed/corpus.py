"""Tiny synthetic corpora for the archival tests: good videos and many kinds of bad input."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# Irregular frame times (ms) of the variable-frame-rate clip.
VFR_PTS = [0, 40, 80, 100, 200, 210, 260, 400, 433, 466, 500, 600, 610, 620, 700, 800]


def smooth_frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """(n,h,w,3) uint8: smooth colour waves with a soft blob drifting right, 1 px a frame; `seed`
    shifts the colours, so videos of different seeds differ everywhere."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    phase = seed * 1.3
    out = np.empty((n, h, w, 3), np.uint8)
    for t in range(n):
        base = np.stack([128 + 80 * np.sin(xx / 9 + phase + t * 0.05), 128 + 80 * np.cos(yy / 7 - phase),
                         128 + 60 * np.sin((xx + yy) / 11 + 2 * phase)], -1)
        cx, cy = 8 + t % max(w - 16, 1), h / 2
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 30.0)[..., None]
        out[t] = np.clip(base * (1 - blob) + np.array([240, 230, 40]) * blob, 0, 255).astype(np.uint8)
    return out


def mean_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over frames of the per-frame PSNR (dB) of two (n,H,W,3) uint8 clips."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(1)
    return float(np.mean(10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))))


def encode_video(path: Path, frames: np.ndarray, codec: str = "libx264", *, fmt: str | None = None,
                 pix_fmt: str = "yuv420p", rate: int = 25, gop: int = 8, pts: list[int] | None = None,
                 time_base: Fraction | None = None, options: dict[str, str] | None = None) -> Path:
    """Encode frames with PyAV (any codec/pixel format; pts/time_base for hand-made frame times)."""
    n, h, w, _ = frames.shape
    with av.open(str(path), "w", format=fmt, options=options or {}) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        stream.codec_context.gop_size = gop
        if time_base is not None:
            stream.codec_context.time_base = time_base
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            frame.pts = pts[i] if pts is not None else i
            if time_base is not None:
                frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_audio(path: Path, codec: str, fmt: str | None = None) -> Path:
    """An audio-only file (no video stream)."""
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=8000, layout="mono")
        samples = (np.sin(np.arange(4096) / 5) * 0.3).astype(np.float32)[None]
        if codec == "pcm_s16le":
            samples = (samples * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp" if codec == "aac" else "s16", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def make_bad_corpus(root: Path) -> dict[str, tuple[str, str | int]]:
    """Write one file per kind of input into root. Returns {kind: (uri, expected)} where expected is
    the frame count the archive must keep (success) or a substring of the failed row's reason."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    kinds: dict[str, tuple[str, str | int]] = {}

    def add(kind: str, path: Path, expected: str | int) -> None:
        kinds[kind] = (str(path), expected)

    # good videos: they must complete whatever else the corpus holds
    add("good h264 mp4", encode_video(root / "good.mp4", smooth_frames(16, 32, 48, 0)), 16)
    add("good ffv1 mkv", encode_video(root / "good2.mkv", smooth_frames(16, 32, 48, 1), "ffv1", pix_fmt="bgr0"), 16)
    # valid but unusual input: must succeed
    add("10-bit h264", encode_video(root / "tenbit.mp4", smooth_frames(16, 32, 48, 2), pix_fmt="yuv420p10le"), 16)
    add("variable frame rate", encode_video(root / "vfr.mkv", smooth_frames(16, 32, 48, 3), fmt="matroska",
                                             pts=VFR_PTS, time_base=Fraction(1, 1000)), 16)
    add("odd size 33x17", encode_video(root / "odd.mkv", smooth_frames(12, 17, 33, 4), "ffv1", pix_fmt="yuv444p"), 12)
    add("1x1 video", encode_video(root / "tiny.mkv", smooth_frames(4, 16, 16, 5)[:, :1, :1], "ffv1",
                                  pix_fmt="bgr0"), 4)
    frames = smooth_frames(6, 32, 48, 6)
    Image.fromarray(frames[0]).save(root / "picture.mp4", format="PNG")
    add("png renamed .mp4 (one picture)", root / "picture.mp4", 1)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(root / "anim.mp4", format="GIF", save_all=True, append_images=images[1:], duration=40, loop=0)
    add("animated gif renamed .mp4", root / "anim.mp4", 6)
    add("upper-case extension, spaces, unicode", encode_video(root / "My Clip ä.MP4", smooth_frames(8, 32, 48, 7)), 8)
    # bad input: each must become one failed row with its reason
    (root / "text.mp4").write_text("this is not a video\n" * 50)
    add("text file named .mp4", root / "text.mp4", "not a video file")
    (root / "empty.mp4").write_bytes(b"")
    add("empty file", root / "empty.mp4", "not a video file")
    data = encode_video(root / "full.mp4", smooth_frames(16, 32, 48, 8)).read_bytes()
    (root / "full.mp4").unlink()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])  # the index (moov) is at the end: gone
    add("truncated mp4 (cut in half)", root / "truncated.mp4", "not a video file or it is damaged")
    data = encode_video(root / "fs.mp4", smooth_frames(16, 32, 48, 9), options={"movflags": "faststart"}).read_bytes()
    (root / "fs.mp4").unlink()
    (root / "truncated_faststart.mp4").write_bytes(data[: len(data) // 2])  # index first, data cut mid-frame
    add("truncated faststart mp4", root / "truncated_faststart.mp4", "damaged or truncated")
    (root / "zero.y4m").write_bytes(b"YUV4MPEG2 W32 H32 F25:1 Ip A1:1 C420jpeg\n")
    add("zero-frame y4m (header only)", root / "zero.y4m", "no decodable frames")
    add("audio-only aac in .mp4", write_audio(root / "audio.mp4", "aac", fmt="mp4"), "no video stream")
    add("audio-only wav named .mkv", write_audio(root / "audio.mkv", "pcm_s16le", fmt="wav"), "no video stream")
    (root / "random.mkv").write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    add("random bytes .mkv", root / "random.mkv", "not a video file")
    codec = "libvpx-vp9" if "libvpx-vp9" in av.codecs_available else "libvpx"
    data = encode_video(root / "w.webm", smooth_frames(16, 32, 48, 10), codec).read_bytes()
    (root / "w.webm").unlink()
    (root / "garbage.webm").write_bytes(data[:200] + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    add("webm with garbage after the header", root / "garbage.webm", "not a video file or it is damaged")
    add("path that does not exist", root / "missing.mp4", "cannot read source")
    big = np.zeros((1, 2160, 3840, 3), np.uint8)
    add("4K video, above a 4 GiB worker", encode_video(root / "uhd.mkv", big, "ffv1", pix_fmt="bgr0"),
        "3840x2160 need about")
    (root / "folder.mp4").mkdir()
    add("directory named like a video", root / "folder.mp4", "Is a directory")
    return kinds
