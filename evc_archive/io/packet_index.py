"""Where to seek: a video stream's packet index (cached per file content) and seek plans.

Seeking by timestamp is only safe where the index proves that frame ``i`` is the one shown at
``frame_pts[i]``; every other case plans "decode from the beginning" (``None``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from av.container import InputContainer
from av.video.stream import VideoStream

from evc_archive.io.video_input import _AV_ERRORS, _Input
from evc_archive.io.video_probe import _is_constant_rate


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
