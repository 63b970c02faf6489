"""What a video is: size, exact frame count, frame rate, codec and pixel format (PyAV/FFmpeg).

Frame rate. ``VideoInfo.fps`` is the container's average rate, else FFmpeg's guessed rate, else
``frame_count / duration``; a container rate that disagrees by more than 1 % with the rate measured
from the frame timestamps is not trusted. For a variable-frame-rate (VFR) video the rate is the
measured mean, ``(frame_count - 1) / (last_pts - first_pts)``: the archive keeps every frame and the
average rate, not the individual frame times, so a VFR video comes back as constant rate with the
same frame count and about the same duration.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

import av
import numpy as np
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from evc_archive.core.errors import VideoError
from evc_archive.io.video_input import _AV_ERRORS, Source, _decoded, _Input, _reason

__all__ = ["VideoInfo", "probe_video"]


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` learns about a video's first video stream.

    ``frame_count`` is exact (frames a full decode yields); a decoded clip has shape
    ``(frame_count, height, width, 3)``. ``fps`` is the average rate (see the module docstring
    for VFR). ``codec`` is FFmpeg's codec name (``"h264"``, ``"vp9"``, ``"ffv1"``, ...),
    ``pix_fmt`` the decoded pixel format (``"yuv420p"``, ``"yuv420p10le"``, ...).
    """

    width: int
    height: int
    frame_count: int
    fps: Fraction
    codec: str
    pix_fmt: str
    variable_frame_rate: bool


# --------------------------------------------------------------------------------------------------
# Timestamps


def _is_constant_rate(pts: np.ndarray) -> bool:
    """True when sorted timestamps are evenly spaced, allowing one tick of rounding per frame.

    Coarse time bases round the frame times (29.97 fps in Matroska's 1/1000 gives gaps of 33 and
    34), so a gap may differ from the mean by one tick; a missing frame, a duplicate or real VFR
    differs by far more.
    """
    if len(pts) < 3:
        return len(pts) < 2 or pts[1] > pts[0]
    gaps = np.diff(pts)
    mean = (pts[-1] - pts[0]) / (len(pts) - 1)
    return bool(mean > 0 and np.all(np.abs(gaps - mean) <= 1 + 1e-3 * mean))


def _measured_rate(pts: np.ndarray, time_base: Fraction | None) -> Fraction | None:
    """(frames - 1) / span of the sorted timestamps, or None when that cannot be measured."""
    if time_base is None or len(pts) < 2 or pts[-1] <= pts[0]:
        return None
    return Fraction(len(pts) - 1) / (int(pts[-1] - pts[0]) * Fraction(time_base))


def _frame_rate(
    stream: VideoStream,
    container: InputContainer,
    count: int,
    measured: Fraction | None,
    vfr: bool,
    name: str,
) -> Fraction:
    if vfr and measured is not None:
        return measured
    candidates = [stream.average_rate] if vfr else [stream.average_rate, stream.guessed_rate]
    for rate in candidates:
        if rate is not None and rate > 0:
            rate = Fraction(rate)
            if measured is None or abs(rate - measured) <= measured / 100:
                return rate
    if measured is not None:
        return measured
    seconds: Fraction | None = None
    if stream.duration and stream.time_base:
        seconds = stream.duration * Fraction(stream.time_base)
    elif container.duration:
        seconds = Fraction(container.duration, av.time_base)
    if seconds and seconds > 0:
        return Fraction(count) / seconds
    raise VideoError(f"{name} does not state its frame rate and it cannot be measured.")


# --------------------------------------------------------------------------------------------------
# Counting frames

_Counted = tuple[Optional[VideoFrame], int, list[Optional[int]]]
"""The first decoded frame (None if none), the number of frames, and their timestamps."""


def _count_decoded(container: InputContainer, stream: VideoStream, name: str) -> _Counted:
    """Count by decoding every frame (not converted to RGB): exactly what a read yields."""
    first: VideoFrame | None = None
    count = 0
    stamps: list[int | None] = []
    for frame in _decoded(container, stream, name):
        if first is None:
            first = frame
        count += 1
        stamps.append(frame.pts)
    return first, count, stamps


def _count_packets(container: InputContainer, stream: VideoStream, name: str) -> _Counted:
    """Count by demuxing packets, decoding only until the first frame comes out."""
    first: VideoFrame | None = None
    count = 0
    stamps: list[int | None] = []
    try:
        for packet in container.demux(stream):
            if packet.size == 0:  # the empty packet that ends the stream
                if first is None:
                    first = next(iter(packet.decode()), None)
                continue
            if first is None:
                first = next(iter(packet.decode()), None)
            if packet.is_discard:
                continue
            count += 1
            stamps.append(packet.pts)
    except _AV_ERRORS as e:
        raise VideoError(
            f"Cannot decode {name}: the video data is damaged or truncated ({_reason(e)})."
        ) from e
    if first is None:
        count = 0
    return first, count, stamps


# --------------------------------------------------------------------------------------------------
# Probing


def probe_video(source: Source, *, exact: bool = True) -> VideoInfo:
    """Describe the first video stream of ``source``.

    With ``exact=True`` (the default) every frame is decoded (not converted to RGB) to count frames
    and check frame times, so ``frame_count`` is what :func:`~evc_archive.io.video_read.read_frames`
    yields. With ``exact=False`` only the first frame is decoded and the rest are counted by
    demuxing packets, which is much faster and agrees for nearly all intact files (not for damaged
    ones, nor for streams whose packets are not one frame each, e.g. separate interlaced fields or
    hidden VP8 frames).

    Raises VideoError if the source is missing, not a video, has no video stream, is damaged, or
    has no decodable frame.
    """
    src = _Input(source)
    container, stream = src.open()
    with closing(container):
        count_frames = _count_decoded if exact else _count_packets
        first, count, stamps = count_frames(container, stream, src.name)
        if first is None or count == 0:
            raise VideoError(f"{src.name} has a video stream but no decodable frames.")

        vfr = False
        measured = None
        if all(p is not None for p in stamps):
            pts = np.sort(np.asarray(stamps, dtype=np.int64))
            vfr = not _is_constant_rate(pts)
            measured = _measured_rate(pts, stream.time_base)
        fps = _frame_rate(stream, container, count, measured, vfr, src.name)
        return VideoInfo(
            width=int(first.width),
            height=int(first.height),
            frame_count=count,
            fps=fps,
            codec=stream.codec.canonical_name,
            pix_fmt=first.format.name,
            variable_frame_rate=vfr,
        )
