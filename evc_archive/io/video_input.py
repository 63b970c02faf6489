"""Video sources opened as PyAV (FFmpeg) input containers, shared by probing and reading.

Sources are a path (``str`` / ``os.PathLike``) or a binary file object (``open(path, "rb")``, an
fsspec file, ...). A file object is rewound to the position it had when handed over each time it is
opened again, so it must be seekable if it is used for more than one pass (a probe plus a read, or a
seek that has to fall back to decoding from the start).

Every failure a user can cause (missing file, not a video, audio only, damaged data, a second pass
over a non-seekable file object, ...) raises :class:`~evc_archive.core.errors.VideoError` with one
sentence that names the file; PyAV/FFmpeg exceptions never escape raw. ``_AV_ERRORS`` and
``_reason`` serve probing, reading and writing alike.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import BinaryIO, Union

import av
import av.error
from av.container import InputContainer
from av.stream import Disposition
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from evc_archive.core.errors import VideoError

__all__ = ["Source"]

Source = Union[str, "os.PathLike[str]", BinaryIO]
"""A path, or a binary file object (seekable if it is read more than once)."""

# What FFmpeg (through PyAV) raises for bad input, plus the OS errors of reading and writing files.
_AV_ERRORS: tuple[type[BaseException], ...] = (av.error.FFmpegError, OSError, EOFError)


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
