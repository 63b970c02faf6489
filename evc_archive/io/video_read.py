"""Decode frames of a video (PyAV/FFmpeg) as RGB arrays, seeking where that is safe.

Frames leave this module as numpy ``uint8`` RGB arrays: one frame is ``(H, W, 3)``, a clip is
``(N, H, W, 3)``. Frame ``i`` is the ``i``-th frame in display order, counted from the start of the
(first) video stream, exactly as a decode from the beginning would number it. Sources and errors
are those of :mod:`evc_archive.io.video_input`.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from contextlib import closing

import numpy as np
from av.video.frame import VideoFrame

from evc_archive.core.errors import VideoError
from evc_archive.io.packet_index import _packet_index, _seek_plan
from evc_archive.io.video_input import _AV_ERRORS, Source, _decoded, _Input

__all__ = ["iter_frames", "read_frames"]


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
