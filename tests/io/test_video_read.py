"""Tests for evc_archive.io.video_read on small synthetic videos made with PyAV itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evc_archive.core.errors import VideoError
from evc_archive.io.video_probe import probe_video
from evc_archive.io.video_read import iter_frames, read_frames
from tests.io.synthetic_videos import N, assert_one_sentence, make_video


@pytest.mark.parametrize("key", ["mp4-h264-gop10", "mov-h264", "avi-mpeg4", "mkv-ffv1",
                                 "y4m-rawvideo", "mp4-h264-10bit", "mkv-h264-vfr", "mp4-h264-vfr"])
def test_range_read_equals_slice_of_full_read(videos: dict[str, Path], key: str) -> None:
    path = videos[key]
    full = read_frames(path)
    for start in (1, 5, 9, 10, 11, 17, 20, 27, 29):
        for length in (1, 4, 11):
            part = read_frames(path, start, start + length)
            np.testing.assert_array_equal(part, full[start:start + length],
                                          err_msg=f"{key} frames [{start}, {start + length})")
    np.testing.assert_array_equal(read_frames(path, 23), full[23:])
    np.testing.assert_array_equal(read_frames(path, 0, 7), full[:7])


def test_iter_frames_single_and_batched(videos: dict[str, Path]) -> None:
    path = videos["mp4-h264-gop10"]
    full = read_frames(path)
    singles = list(iter_frames(path, 3, 9))
    assert [f.shape for f in singles] == [(48, 64, 3)] * 6
    np.testing.assert_array_equal(np.stack(singles), full[3:9])
    batches = list(iter_frames(path, 12, None, batch=8))
    assert [b.shape[0] for b in batches] == [8, 8, 2]
    np.testing.assert_array_equal(np.concatenate(batches), full[12:])


def test_ranges_behave_like_slices(videos: dict[str, Path]) -> None:
    path = videos["mkv-ffv1"]
    assert read_frames(path, N, N + 5).shape == (0, 48, 64, 3)
    assert read_frames(path, 40).shape == (0, 48, 64, 3)
    assert read_frames(path, 5, 5).shape == (0, 48, 64, 3)
    assert read_frames(path, 27, 100).shape == (3, 48, 64, 3)
    with pytest.raises(ValueError):
        read_frames(path, -1)
    with pytest.raises(ValueError):
        iter_frames(path, batch=0)  # checked before the first next()


@pytest.mark.parametrize("key", ["mp4-h264-gop10", "mp4-faststart", "mkv-ffv1", "mkv-h264-vfr",
                                 "avi-mpeg4", "webm-vpx"])
def test_truncated_files_give_fewer_frames_or_video_error(videos, tmp_path, key) -> None:
    if key == "mp4-faststart":  # the index (moov) comes first, so the first half still plays
        source = make_video(tmp_path / "faststart.mp4", "libx264", gop=10,
                            options={"movflags": "faststart"})
    else:  # an mp4 with its index at the end cannot be opened once cut
        source = videos[key]
    data = source.read_bytes()
    path = tmp_path / f"cut{source.suffix}"
    path.write_bytes(data[: len(data) // 2])
    try:
        info = probe_video(path)
        frames = read_frames(path)
    except VideoError as error:
        assert_one_sentence(error, path.name)
        assert key not in ("mp4-faststart", "mkv-ffv1")  # these two do give their first frames
        return
    assert 0 < info.frame_count < N and frames.shape[0] == info.frame_count
    np.testing.assert_array_equal(frames, read_frames(source)[: info.frame_count])
    for start in range(1, info.frame_count):
        np.testing.assert_array_equal(read_frames(path, start, start + 3),
                                      frames[start:start + 3])


def test_zero_frame_video(tmp_path: Path) -> None:
    path = tmp_path / "empty.y4m"  # a valid stream header, then no frames
    path.write_bytes(b"YUV4MPEG2 W32 H32 F25:1 Ip A1:1 C420jpeg\n")
    for call in (probe_video, read_frames):
        with pytest.raises(VideoError, match="no decodable frames") as excinfo:
            call(path)
        assert_one_sentence(excinfo.value, "empty.y4m")
