"""Tests for evc_archive.io.video_write on small synthetic videos made with PyAV itself."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from evc_archive.core.errors import VideoError
from evc_archive.io.video_probe import probe_video
from evc_archive.io.video_read import read_frames
from evc_archive.io.video_write import SUPPORTED_OUTPUT_EXTENSIONS, write_video
from tests.io.synthetic_videos import assert_one_sentence, synthetic


def test_mkv_is_bit_exact_lossless(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for height, width in ((48, 64), (17, 33)):
        frames = rng.integers(0, 256, (10, height, width, 3), dtype=np.uint8)
        frames[:5] = synthetic(5, height, width)  # structured and pure-noise frames both
        path = tmp_path / f"lossless_{width}x{height}.mkv"
        write_video(path, list(frames), Fraction(25))
        info = probe_video(path)
        assert (info.codec, info.pix_fmt) == ("ffv1", "bgr0")
        back = read_frames(path)
        assert back.dtype == np.uint8
        np.testing.assert_array_equal(back, frames)
        np.testing.assert_array_equal(read_frames(path, 6, 9), frames[6:9])


@pytest.mark.parametrize("ext", [".mkv", ".mp4"])
@pytest.mark.parametrize("fps", [Fraction(30000, 1001), Fraction(25)])
def test_frame_rate_and_count_round_trip(tmp_path: Path, ext: str, fps: Fraction) -> None:
    path = tmp_path / f"clip{ext}"
    write_video(path, synthetic(17, 32, 48), fps)
    info = probe_video(path)
    assert (info.frame_count, info.fps, info.variable_frame_rate) == (17, fps, False)
    assert (info.width, info.height) == (48, 32)


@pytest.mark.parametrize(("height", "width", "pix_fmt"), [(32, 48, "yuv420p"), (17, 33, "yuv444p")])
def test_mp4_pixel_format_and_quality(tmp_path: Path, height: int, width: int,
                                      pix_fmt: str) -> None:
    frames = synthetic(12, height, width)
    path = tmp_path / "clip.mp4"
    write_video(path, iter(frames), 25)  # a generator and an int rate are fine
    info = probe_video(path)
    assert (info.codec, info.pix_fmt, info.frame_count) == ("h264", pix_fmt, 12)
    back = read_frames(path).astype(np.float64)
    mse = ((back - frames) ** 2).mean()
    psnr = 10 * np.log10(255**2 / mse)
    assert psnr > (22 if pix_fmt == "yuv420p" else 30)  # harsh pattern; 4:2:0 loses chroma detail
    write_video(tmp_path / "low.mp4", frames, 25, crf=40)  # crf reaches x264
    assert (tmp_path / "low.mp4").stat().st_size < path.stat().st_size


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    def mixed_sizes():
        yield from synthetic(5, 32, 48)
        yield synthetic(1, 32, 50)[0]  # the sixth frame is wider

    for ext in (".mkv", ".mp4"):
        with pytest.raises(VideoError, match="same size") as excinfo:
            write_video(tmp_path / f"bad{ext}", mixed_sizes(), 25)
        assert_one_sentence(excinfo.value, f"bad{ext}")
    assert _leftovers(tmp_path) == []

    # An existing output survives a failed overwrite untouched.
    good = tmp_path / "good.mkv"
    write_video(good, synthetic(3, 16, 16), 25)
    before = good.read_bytes()
    with pytest.raises(VideoError):
        write_video(good, mixed_sizes(), 25)
    assert good.read_bytes() == before and _leftovers(tmp_path) == ["good.mkv"]


def test_write_rejects_bad_arguments(tmp_path: Path) -> None:
    frames = synthetic(3, 16, 16)
    with pytest.raises(VideoError) as excinfo:
        write_video(tmp_path / "clip.avi", frames, 25)
    assert_one_sentence(excinfo.value, "clip.avi", *SUPPORTED_OUTPUT_EXTENSIONS)
    with pytest.raises(VideoError, match="no frames"):
        write_video(tmp_path / "none.mkv", [], 25)
    with pytest.raises(VideoError, match="uint8"):
        write_video(tmp_path / "float.mkv", frames.astype(np.float32), 25)
    with pytest.raises(VideoError, match=r"\(H, W, 3\)"):
        write_video(tmp_path / "gray.mkv", frames[..., 0], 25)
    with pytest.raises(VideoError, match="positive"):
        write_video(tmp_path / "rate.mkv", frames, 0)
    with pytest.raises(VideoError, match="crf"):
        write_video(tmp_path / "crf.mp4", frames, 25, crf=99)
    with pytest.raises(VideoError, match="folder"):
        write_video(tmp_path / "missing" / "clip.mkv", frames, 25)
    assert _leftovers(tmp_path) == []
