"""Read and write video files through PyAV (FFmpeg).

Frames cross this module's boundary as numpy ``uint8`` RGB arrays: one frame is ``(H, W, 3)``, a
clip is ``(N, H, W, 3)``. Frame ``i`` is the ``i``-th frame in display order, counted from the start
of the (first) video stream, exactly as a decode from the beginning would number it.

Sources are a path (``str`` / ``os.PathLike``) or a binary file object (``open(path, "rb")``, an
fsspec file, ...). A file object is rewound to the position it had when handed over each time it is
opened again, so it must be seekable if it is used for more than one pass (a probe plus a read, or a
seek that has to fall back to decoding from the start).

Every failure a user can cause (missing file, not a video, audio only, no decodable frames, damaged
data, unsupported output extension, frames of mixed sizes, ...) raises
:class:`~evc_archive.core.errors.VideoError` with one sentence that names the file; PyAV/FFmpeg
exceptions never escape raw.

Frame rate. ``VideoInfo.fps`` is the container's average rate, else FFmpeg's guessed rate, else
``frame_count / duration``; a container rate that disagrees by more than 1 % with the rate measured
from the frame timestamps is not trusted. For a variable-frame-rate (VFR) video the rate is the
measured mean, ``(frame_count - 1) / (last_pts - first_pts)``: the archive keeps every frame and the
average rate, not the individual frame times, so a VFR video comes back as constant rate with the
same frame count and about the same duration.
"""

from __future__ import annotations

import operator
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import closing, suppress
from dataclasses import dataclass
from fractions import Fraction
from itertools import chain
from numbers import Rational, Real
from pathlib import Path
from typing import BinaryIO, Union

import av
import av.error
import numpy as np
from av.container import InputContainer
from av.stream import Disposition
from av.video.frame import VideoFrame
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc
from av.video.stream import VideoStream

from evc_archive.core.errors import VideoError

__all__ = [
    "SUPPORTED_OUTPUT_EXTENSIONS",
    "Source",
    "VideoInfo",
    "iter_frames",
    "probe_video",
    "read_frames",
    "write_video",
]

Source = Union[str, "os.PathLike[str]", BinaryIO]
"""A path, or a binary file object (seekable if it is read more than once)."""

# What FFmpeg (through PyAV) raises for bad input, plus the OS errors of reading and writing files.
_AV_ERRORS: tuple[type[BaseException], ...] = (av.error.FFmpegError, OSError, EOFError)

SUPPORTED_OUTPUT_EXTENSIONS: dict[str, str] = {
    ".mkv": "lossless FFV1 in Matroska",
    ".mp4": "H.264 in MP4",
}
"""Extensions :func:`write_video` accepts, with what each one writes."""

_DEFAULT_CRF = 18


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
# Opening sources


def _reason(error: BaseException) -> str:
    """A short human reason from an FFmpeg/OS error, without errno numbers or tracebacks."""
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return str(text).strip().rstrip(".")


def _file_object_name(file: object) -> str:
    fs, path = getattr(file, "fs", None), getattr(file, "path", None)
    if fs is not None and isinstance(path, str):  # an fsspec file: name it by its URL
        try:
            return f"'{fs.unstrip_protocol(path)}'"
        except Exception:  # noqa: BLE001 - naming is best effort
            return f"'{path}'"
    name = getattr(file, "name", None)
    if isinstance(name, (str, os.PathLike)):
        return f"'{os.fspath(name)}'"
    return f"the video file object ({type(file).__name__})"


class _Input:
    """A source that can be opened (and, where possible, reopened) as a PyAV input container."""

    def __init__(self, source: Source) -> None:
        self.file: BinaryIO | None = None
        self.path: str | None = None
        self.rewind_to: int | None = None
        self.opened = False
        if isinstance(source, (str, os.PathLike)):
            self.path = os.fsdecode(source)
            self.name = f"'{self.path}'"
        elif hasattr(source, "read"):
            self.file = source
            self.name = _file_object_name(source)
            try:
                if source.seekable():
                    self.rewind_to = source.tell()
            except (AttributeError, OSError, ValueError):
                self.rewind_to = None
        else:
            raise TypeError(
                f"a video source is a path or a binary file object, not {type(source).__name__}"
            )

    @property
    def can_reopen(self) -> bool:
        return self.path is not None or self.rewind_to is not None

    def cache_key(self) -> tuple[object, ...] | None:
        """Identity of a path's current content (None for file objects, which are not cached)."""
        if self.path is None:
            return None
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (os.path.realpath(self.path), st.st_size, st.st_mtime_ns, st.st_ino)

    def open(self) -> tuple[InputContainer, VideoStream]:
        """Open the container and pick its video stream; raises VideoError."""
        if self.path is not None:
            if not os.path.exists(self.path):
                raise VideoError(f"Video file {self.name} does not exist.")
            if os.path.isdir(self.path):
                raise VideoError(f"{self.name} is a directory, not a video file.")
            target: object = self.path
        else:
            if self.opened:
                if self.rewind_to is None:
                    raise VideoError(
                        f"Cannot read {self.name} a second time because the file object is not "
                        "seekable; pass a path or a seekable file."
                    )
                try:
                    self.file.seek(self.rewind_to)  # type: ignore[union-attr]
                except _AV_ERRORS as e:
                    raise VideoError(f"Cannot rewind {self.name} ({_reason(e)}).") from e
            target = self.file
        self.opened = True
        try:
            container = av.open(target, mode="r")
        except (av.error.InvalidDataError, EOFError) as e:
            if self.file is not None and self.rewind_to is None:
                raise VideoError(
                    f"Cannot read {self.name}: it is not a video file, it is damaged, or this "
                    f"non-seekable file object was already read ({_reason(e)})."
                ) from e
            raise VideoError(
                f"Cannot read {self.name}: it is not a video file or it is damaged ({_reason(e)})."
            ) from e
        except _AV_ERRORS as e:
            raise VideoError(f"Cannot read {self.name} ({_reason(e)}).") from e
        try:
            stream = self._video_stream(container)
        except BaseException:
            container.close()
            raise
        stream.thread_type = "AUTO"
        return container, stream

    def _video_stream(self, container: InputContainer) -> VideoStream:
        for stream in container.streams.video:
            if not stream.disposition & Disposition.attached_pic:  # skip cover art of audio files
                return stream
        kinds = sorted(
            "cover picture" if s.type == "video" else str(s.type) for s in container.streams
        )
        held = "it holds no streams"
        if kinds:
            held = f"it holds only {' and '.join(dict.fromkeys(kinds))}"
        raise VideoError(f"{self.name} has no video stream ({held}).")


def _decoded(container: InputContainer, stream: VideoStream, name: str) -> Iterator[VideoFrame]:
    """Decode the stream from wherever the container stands; errors become VideoError."""
    try:
        for packet in container.demux(stream):
            yield from packet.decode()
    except _AV_ERRORS as e:
        raise VideoError(
            f"Cannot decode {name}: the video data is damaged or truncated ({_reason(e)})."
        ) from e


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
# Probing


def probe_video(source: Source, *, exact: bool = True) -> VideoInfo:
    """Describe the first video stream of ``source``.

    With ``exact=True`` (the default) every frame is decoded (not converted to RGB) to count frames
    and check frame times, so ``frame_count`` is what :func:`read_frames` yields. With
    ``exact=False`` only the first frame is decoded and the rest are counted by demuxing packets,
    which is much faster and agrees for nearly all intact files (not for damaged ones, nor for
    streams whose packets are not one frame each, e.g. separate interlaced fields or hidden VP8
    frames).

    Raises VideoError if the source is missing, not a video, has no video stream, is damaged, or
    has no decodable frame.
    """
    src = _Input(source)
    container, stream = src.open()
    with closing(container):
        first: VideoFrame | None = None
        count = 0
        stamps: list[int | None] = []
        if exact:
            for frame in _decoded(container, stream, src.name):
                if first is None:
                    first = frame
                count += 1
                stamps.append(frame.pts)
        else:
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
                    f"Cannot decode {src.name}: the video data is damaged or truncated "
                    f"({_reason(e)})."
                ) from e
            if first is None:
                count = 0
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


# --------------------------------------------------------------------------------------------------
# Seeking


@dataclass(frozen=True)
class _PacketIndex:
    """The video stream's packets as found by demuxing (no decoding), in decode order."""

    pts: np.ndarray  # int64, every packet has a pts (else no index is built)
    dts: np.ndarray  # int64, pts where the demuxer gave no dts
    keyframe: np.ndarray  # bool
    shown: np.ndarray  # bool: False for packets the demuxer marks discard (edit lists)

    @property
    def frame_pts(self) -> np.ndarray:
        """Display times of the frames, in display order: frame i is shown at frame_pts[i]."""
        return np.sort(self.pts[self.shown])


_INDEX_CACHE: OrderedDict[tuple[object, ...], _PacketIndex | None] = OrderedDict()
_INDEX_CACHE_SIZE = 16
_INDEX_LOCK = threading.Lock()


def _scan_packets(container: InputContainer, stream: VideoStream) -> _PacketIndex | None:
    """Demux the whole stream once; None when timestamps are missing or demuxing fails."""
    pts: list[int] = []
    dts: list[int] = []
    key: list[bool] = []
    shown: list[bool] = []
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.pts is None:
                return None
            pts.append(packet.pts)
            dts.append(packet.pts if packet.dts is None else packet.dts)
            key.append(bool(packet.is_keyframe))
            shown.append(not packet.is_discard)
    except _AV_ERRORS:
        return None  # the decode from the start reports the damage properly
    return _PacketIndex(
        np.asarray(pts, dtype=np.int64),
        np.asarray(dts, dtype=np.int64),
        np.asarray(key, dtype=bool),
        np.asarray(shown, dtype=bool),
    )


def _packet_index(
    src: _Input, container: InputContainer, stream: VideoStream
) -> _PacketIndex | None:
    """The packet index: cached per path and file content, scanned anew for file objects."""
    key = src.cache_key()
    if key is not None:
        key = (*key, stream.index)
        with _INDEX_LOCK:
            if key in _INDEX_CACHE:
                _INDEX_CACHE.move_to_end(key)
                return _INDEX_CACHE[key]
    index = _scan_packets(container, stream)
    if key is not None:
        with _INDEX_LOCK:
            _INDEX_CACHE[key] = index
            while len(_INDEX_CACHE) > _INDEX_CACHE_SIZE:
                _INDEX_CACHE.popitem(last=False)
    return index


@dataclass(frozen=True)
class _SeekPlan:
    # Timestamps (stream time base) to seek to, best first. Demuxers differ in what they compare a
    # seek timestamp with (MP4 and Matroska: the keyframe's pts, most others: its dts), so the
    # keyframe's pts comes first and its dts, which can only land earlier, is the second try.
    seek_to: tuple[int, ...]
    frame_pts: np.ndarray  # display times of all frames, in display order


def _seek_plan(index: _PacketIndex | None, start: int) -> _SeekPlan | None:
    """Where to seek so that decoding yields frame ``start`` and everything after it intact.

    None means "decode from the beginning": no index, duplicate timestamps, a variable frame rate
    (the frame index is then not a function of the timestamp we can trust), a start beyond the
    packets, or no suitable keyframe.
    """
    if index is None:
        return None
    frame_pts = index.frame_pts
    if start >= len(frame_pts) or not _is_constant_rate(frame_pts):
        return None
    target = frame_pts[start]
    # The first packet (decode order) whose frame is needed; the keyframe we start from must come
    # before it, and must itself be shown no later than the target. The second rule also covers
    # open GOPs: the leading pictures of a keyframe are shown before it, so they are never needed.
    first_needed = int(np.argmax(index.pts >= target))
    upto = first_needed + 1
    positions = np.flatnonzero(index.keyframe[:upto] & (index.pts[:upto] <= target))
    if len(positions) == 0:
        return None
    k = positions[-1]
    if k == 0:
        return None  # starting at the first keyframe is the same as decoding from the beginning
    tries = dict.fromkeys((int(index.pts[k]), int(min(index.dts[k], index.pts[k]))))
    return _SeekPlan(seek_to=tuple(tries), frame_pts=frame_pts)


def _iter_av_frames(src: _Input, start: int, stop: int | None) -> Iterator[VideoFrame]:
    """Decoded frames ``[start, stop)`` in display order, seeking when that is safe.

    After a seek every frame is checked against the timestamps the packet index predicts. A seek
    that lands after the wanted frame is retried at an earlier timestamp; any other disagreement (a
    frame the decoder drops, a timestamp that does not match) abandons seeking and continues by
    decoding from the beginning, so the result never depends on the seek.
    """
    if stop is not None and stop <= start:
        return
    if start > 0 and src.can_reopen:
        container, stream = src.open()
        with closing(container):
            plan = _seek_plan(_packet_index(src, container, stream), start)
            for seek_to in plan.seek_to if plan is not None else ():
                try:
                    container.seek(seek_to, stream=stream, backward=True, any_frame=False)
                except _AV_ERRORS:
                    break
                frame_pts = plan.frame_pts
                skip_below = frame_pts[start]
                index = start
                for frame in _decoded(container, stream, src.name):
                    if frame.pts is None:
                        break
                    if frame.pts < skip_below:
                        continue
                    if index >= len(frame_pts) or frame.pts != frame_pts[index]:
                        break
                    yield frame
                    index += 1
                    if index == stop:
                        return
                else:
                    if index == len(frame_pts):
                        return  # the end of the stream, and every frame was accounted for
                if index > start:
                    start = index  # frames went missing after a good start: fall back from here
                    break
                # Nothing matched: the seek probably landed past the start; try an earlier point.
    container, stream = src.open()
    with closing(container):
        for index, frame in enumerate(_decoded(container, stream, src.name)):
            if index < start:
                continue
            yield frame
            if stop is not None and index + 1 >= stop:
                return


# --------------------------------------------------------------------------------------------------
# Reading


def _check_range(start: int, stop: int | None) -> tuple[int, int | None]:
    start = operator.index(start)
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    if stop is not None:
        stop = operator.index(stop)
        if stop < 0:
            raise ValueError(f"stop must be >= 0 or None, got {stop}")
    return start, stop


def _rgb(frame: VideoFrame) -> np.ndarray:
    """(H, W, 3) uint8 RGB, converted with the frame's own colour matrix and range (8/10/12 bit)."""
    return frame.to_ndarray(format="rgb24")


def iter_frames(
    source: Source, start: int = 0, stop: int | None = None, batch: int | None = None
) -> Iterator[np.ndarray]:
    """Yield frames ``[start, stop)`` of ``source`` in display order, decoding lazily.

    With ``batch=None`` each item is one ``(H, W, 3)`` uint8 RGB frame; with ``batch=B`` each item
    is a ``(B, H, W, 3)`` array (the last one may be shorter). ``stop=None`` reads to the end; a
    range past the end is cut short like a slice. Arguments are checked at once; the file is opened
    at the first ``next()``, which raises VideoError for unreadable input.
    """
    start, stop = _check_range(start, stop)
    if batch is not None:
        batch = operator.index(batch)
        if batch < 1:
            raise ValueError(f"batch must be >= 1 or None, got {batch}")
    frames = (_rgb(frame) for frame in _iter_av_frames(_Input(source), start, stop))
    return frames if batch is None else _batched(frames, batch)


def _batched(frames: Iterator[np.ndarray], batch: int) -> Iterator[np.ndarray]:
    pending: list[np.ndarray] = []
    for rgb in frames:
        pending.append(rgb)
        if len(pending) == batch:
            yield np.stack(pending)
            pending = []
    if pending:
        yield np.stack(pending)


def read_frames(source: Source, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Frames ``[start, stop)`` of ``source`` as one ``(N, H, W, 3)`` uint8 RGB array.

    Frame ``i`` is the ``i``-th frame in display order, so ``read_frames(s, k, k + m)`` equals
    ``read_frames(s)[k:k + m]``; a range past the end is cut short like a slice, and an empty range
    gives ``(0, H, W, 3)``. 8-, 10- and 12-bit input and odd sizes are converted with
    ``frame.to_ndarray(format="rgb24")``. A start inside the video seeks to the keyframe at or
    before it (constant-frame-rate streams with timestamps; otherwise it decodes from the start).
    Raises VideoError for unreadable input or a video without decodable frames.
    """
    start, stop = _check_range(start, stop)
    src = _Input(source)
    frames = [_rgb(frame) for frame in _iter_av_frames(src, start, stop)]
    if frames:
        return np.stack(frames)
    # An empty range still has a frame shape: take it from the first frame.
    container, stream = src.open()
    with closing(container):
        first = next(_decoded(container, stream, src.name), None)
        if first is None:
            raise VideoError(f"{src.name} has a video stream but no decodable frames.")
        return np.empty((0, first.height, first.width, 3), dtype=np.uint8)


# --------------------------------------------------------------------------------------------------
# Writing


def _as_rate(fps: object, name: str) -> Fraction:
    if isinstance(fps, bool) or not isinstance(fps, Real):
        raise VideoError(f"Cannot write {name}: the frame rate {fps!r} is not a number.")
    if isinstance(fps, Rational):
        rate = Fraction(fps)
    else:
        rate = Fraction(float(fps)).limit_denominator(1001 * 1000)
    if not rate > 0:
        raise VideoError(f"Cannot write {name}: the frame rate must be positive, not {fps}.")
    return rate


def _check_frame(frame: object, i: int, size: tuple[int, int] | None, name: str) -> np.ndarray:
    array = np.asarray(frame)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise VideoError(
            f"Cannot write {name}: frame {i} has shape {array.shape} and dtype {array.dtype}, "
            "but frames must be (H, W, 3) uint8 RGB."
        )
    if size is not None and array.shape[:2] != size:
        raise VideoError(
            f"Cannot write {name}: frame {i} is {array.shape[1]}x{array.shape[0]} but frame 0 is "
            f"{size[1]}x{size[0]}; all frames must have the same size."
        )
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise VideoError(f"Cannot write {name}: frame {i} is empty ({array.shape}).")
    return np.ascontiguousarray(array)


def _encode(
    temp: Path, ext: str, frames: Iterable[np.ndarray], rate: Fraction, crf: int, name: str
) -> None:
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise VideoError(f"Cannot write {name}: there are no frames to write.")
    first = _check_frame(first, 0, None, name)
    height, width = first.shape[:2]
    with av.open(os.fspath(temp), mode="w", format="matroska" if ext == ".mkv" else "mp4") as out:
        if ext == ".mkv":
            # FFV1 codes bgr0 with a reversible colour transform: the RGB comes back bit-exact.
            stream = out.add_stream(
                "ffv1", rate=rate, options={"level": "3", "g": "1", "slicecrc": "1"}
            )
            stream.pix_fmt = "bgr0"
        else:
            stream = out.add_stream("libx264", rate=rate, options={"crf": str(crf)})
            # x264 needs even sizes for 4:2:0; odd sizes keep full chroma instead.
            stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
            # Tag what the conversion below does (BT.709, limited range), so players agree.
            ctx = stream.codec_context
            ctx.colorspace = 1  # AVCOL_SPC_BT709
            ctx.color_primaries = ColorPrimaries.BT709
            ctx.color_trc = ColorTrc.BT709
            ctx.color_range = ColorRange.MPEG
        stream.width, stream.height = width, height
        for i, array in enumerate(chain([first], it)):
            if i:
                array = _check_frame(array, i, (height, width), name)
            frame = VideoFrame.from_ndarray(array, format="rgb24")
            if ext == ".mp4":
                frame = frame.reformat(
                    format=stream.pix_fmt,
                    dst_colorspace=Colorspace.ITU709,
                    dst_color_range=ColorRange.MPEG,
                )
            frame.pts = i
            frame.time_base = 1 / rate
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def write_video(
    path: str | os.PathLike[str],
    frames: Iterable[np.ndarray],
    fps: Fraction | int,
    *,
    crf: int | None = None,
) -> None:
    """Write ``frames`` (an iterable of ``(H, W, 3)`` uint8 RGB arrays, all one size, or one
    ``(N, H, W, 3)`` array) to ``path`` at ``fps`` frames per second.

    The extension picks the format: ``.mkv`` is FFV1 lossless (reads back bit-exact; ``crf`` is
    ignored), ``.mp4`` is H.264 at ``crf`` (default 18; yuv420p, or yuv444p when a side is odd),
    tagged BT.709. Frame count and rate round-trip through :func:`probe_video`.

    The file is encoded under a temporary name in the same folder and renamed into place, so a
    failure leaves no output (and an existing file at ``path`` untouched). Raises VideoError for an
    unsupported extension, a bad frame rate or crf, no frames, frames of the wrong shape or of mixed
    sizes, and encoding or file-system failures.
    """
    target = Path(os.fspath(path))
    name = f"'{target}'"
    ext = target.suffix.lower()
    if ext not in SUPPORTED_OUTPUT_EXTENSIONS:
        supported = ", ".join(f"{e} ({what})" for e, what in SUPPORTED_OUTPUT_EXTENSIONS.items())
        raise VideoError(
            f"Cannot write {name}: the extension '{target.suffix}' is not supported; "
            f"use {supported}."
        )
    rate = _as_rate(fps, name)
    crf = _DEFAULT_CRF if crf is None else crf
    if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 51:
        raise VideoError(f"Cannot write {name}: crf must be an integer from 0 to 51, not {crf!r}.")
    folder = target.parent
    if not folder.is_dir():
        raise VideoError(f"Cannot write {name}: the folder '{folder}' does not exist.")
    temp = folder / f".{target.name}.{uuid.uuid4().hex[:12]}.part"
    try:
        _encode(temp, ext, frames, rate, crf, name)
        os.replace(temp, target)
    except _AV_ERRORS as e:
        raise VideoError(f"Cannot write {name} ({_reason(e)}).") from e
    finally:
        with suppress(OSError):  # gone after the rename; otherwise best effort
            temp.unlink()
