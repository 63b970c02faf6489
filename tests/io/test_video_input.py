"""Tests for evc_archive.io.video_input on small synthetic videos made with PyAV itself."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest

from evc_archive.core.errors import EVCError, VideoError
from evc_archive.io.video_probe import probe_video
from evc_archive.io.video_read import read_frames
from tests.io.synthetic_videos import assert_one_sentence


def test_file_like_sources(videos: dict[str, Path]) -> None:
    path = videos["mp4-h264-gop10"]
    full = read_frames(path)
    with open(path, "rb") as f:
        assert probe_video(f) == probe_video(path)
        np.testing.assert_array_equal(read_frames(f), full)  # rewound after the probe
        np.testing.assert_array_equal(read_frames(f, 12, 21), full[12:21])
    vfr = videos["mkv-h264-vfr"]
    buffer = io.BytesIO(vfr.read_bytes())
    np.testing.assert_array_equal(read_frames(buffer, 20, 25), read_frames(vfr)[20:25])


class OneWayStream(io.RawIOBase):
    """A pipe-like binary stream: readable once, not seekable."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer) -> int:
        return self._data.readinto(buffer)


def test_non_seekable_source_reads_once(videos: dict[str, Path]) -> None:
    path = videos["mkv-ffv1"]
    pipe = OneWayStream(path.read_bytes())
    np.testing.assert_array_equal(read_frames(pipe, 12, 16), read_frames(path)[12:16])
    with pytest.raises(VideoError, match="already read") as excinfo:
        probe_video(pipe)  # used up: a clear error, not a crash
    assert_one_sentence(excinfo.value, "OneWayStream")


def test_audio_only_files_have_no_video_stream(tmp_path: Path) -> None:
    for name, codec in (("tone.m4a", "aac"), ("tone.wav", "pcm_s16le")):
        path = tmp_path / name
        with av.open(str(path), "w") as container:
            stream = container.add_stream(codec, rate=8000, layout="mono")
            samples = (np.sin(np.arange(4096) / 5) * 0.3).astype(np.float32)[None]
            if codec == "pcm_s16le":
                samples = (samples * 32767).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp" if codec == "aac" else "s16",
                                               layout="mono")
            frame.sample_rate, frame.pts = 8000, 0
            container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        for call in (probe_video, read_frames):
            with pytest.raises(VideoError, match="no video stream") as excinfo:
                call(path)
            assert_one_sentence(excinfo.value, name, "audio")


def test_text_file_renamed_mp4(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    for call in (probe_video, read_frames):
        with pytest.raises(VideoError, match="not a video") as excinfo:
            call(path)
        assert_one_sentence(excinfo.value, "notes.mp4")
    with pytest.raises(VideoError) as excinfo:
        probe_video(io.BytesIO(b""))
    assert_one_sentence(excinfo.value, "BytesIO")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="does not exist") as excinfo:
        probe_video(tmp_path / "nope.mp4")
    assert_one_sentence(excinfo.value, "nope.mp4")
    with pytest.raises(VideoError, match="directory"):
        read_frames(tmp_path)
    assert issubclass(VideoError, EVCError)
