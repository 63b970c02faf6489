"""Tests for evc_archive.io.packet_index: read_frames seeks where the index allows, and only there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evc_archive.io import video_input, video_read
from evc_archive.io.video_read import read_frames


class DecodeCounter:
    """Wraps video_read._decoded and video_input._Input.open to count decoded frames and opens."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.frames = 0
        self.opens = 0
        decoded, open_ = video_read._decoded, video_input._Input.open

        def counting_decoded(*args):
            for frame in decoded(*args):
                self.frames += 1
                yield frame

        def counting_open(src):
            self.opens += 1
            return open_(src)

        monkeypatch.setattr(video_read, "_decoded", counting_decoded)
        monkeypatch.setattr(video_input._Input, "open", counting_open)


def test_seek_skips_decoding_on_gop10_h264(videos: dict[str, Path], monkeypatch) -> None:
    expected = read_frames(videos["mp4-h264-gop10"])
    counter = DecodeCounter(monkeypatch)
    part = read_frames(videos["mp4-h264-gop10"], 25, 28)
    np.testing.assert_array_equal(part, expected[25:28])
    # x264 puts a keyframe at least every 10 frames: far fewer than 28 frames decoded, one open.
    assert counter.frames <= 3 + 10 and counter.opens == 1, (counter.frames, counter.opens)


def test_vfr_decodes_from_the_start(videos: dict[str, Path], monkeypatch) -> None:
    counter = DecodeCounter(monkeypatch)
    read_frames(videos["mp4-h264-vfr"], 25, 28)
    assert counter.frames >= 28  # no seek: the index of a VFR frame is not a function of its time
