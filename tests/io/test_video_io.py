"""Tests for evc_archive.io.video_io on small synthetic videos made with PyAV itself."""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from evc_archive.core.errors import EVCError, VideoError
from evc_archive.io import video_io
from evc_archive.io.video_io import (
    SUPPORTED_OUTPUT_EXTENSIONS,
    VideoInfo,
    iter_frames,
    probe_video,
    read_frames,
    write_video,
)

N = 30  # frames in each generated clip
# Irregular frame times (ms) for the variable-frame-rate clip: gaps from 10 ms to 240 ms.
VFR_PTS = [0, 40, 80, 100, 200, 210, 260, 400, 433, 466, 500, 600, 610, 620, 700,
           800, 840, 880, 1000, 1040, 1100, 1150, 1300, 1310, 1320, 1400, 1500, 1530, 1560, 1800]


def synthetic(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """(n, H, W, 3) uint8: shifting colour gradients plus a moving white square per frame."""
    y, x = np.mgrid[0:height, 0:width]
    out = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        out[i, ..., 0] = (x * 4 + i * 7 + seed) % 256
        out[i, ..., 1] = (y * 4 + i * 3) % 256
        out[i, ..., 2] = ((x + y) * 2 + i * 11) % 256
        r, c = (i * 2) % max(height - 6, 1), (i * 3) % max(width - 6, 1)
        out[i, r:r + 6, c:c + 6] = 255
    return out


def make_video(path: Path, codec: str, *, fmt: str | None = None, n: int = N, height: int = 48,
               width: int = 64, pix_fmt: str = "yuv420p", rate: int = 25, gop: int | None = None,
               pts: list[int] | None = None, time_base: Fraction | None = None,
               options: dict[str, str] | None = None) -> Path:
    """Encode synthetic(n, height, width) with PyAV; pts/time_base give hand-made frame times,
    options are the muxer's."""
    frames = synthetic(n, height, width)
    with av.open(str(path), "w", format=fmt, options=options or {}) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if gop is not None:
            stream.codec_context.gop_size = gop
        if time_base is not None:
            stream.codec_context.time_base = time_base
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = pts[i] if pts is not None else i
            if time_base is not None:
                frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@dataclass(frozen=True)
class Case:
    """One generated input file and what probing it must say."""

    file: str
    codec: str  # the encoder used to make it
    fmt: str | None = None
    height: int = 48
    width: int = 64
    pix_fmt: str = "yuv420p"
    gop: int | None = None
    vfr: bool = False
    decoder: str = ""  # the codec name probe_video reports
    max_mae: float = 25.0  # lossy codecs on this harsh pattern; ffv1/rawvideo only lose chroma


WEBM_CODEC = "libvpx-vp9" if "libvpx-vp9" in av.codecs_available else "libvpx"

CASES = {
    "mp4-h264-gop10": Case("gop10.mp4", "libx264", gop=10, decoder="h264"),
    "mkv-ffv1": Case("ffv1.mkv", "ffv1", decoder="ffv1"),
    "webm-vpx": Case("clip.webm", WEBM_CODEC,
                     decoder="vp9" if WEBM_CODEC == "libvpx-vp9" else "vp8"),
    "mov-h264": Case("clip.mov", "libx264", gop=10, decoder="h264"),
    "avi-mpeg4": Case("clip.avi", "mpeg4", gop=10, decoder="mpeg4"),
    "y4m-rawvideo": Case("clip.y4m", "rawvideo", fmt="yuv4mpegpipe", decoder="rawvideo"),
    "mp4-h264-10bit": Case("tenbit.mp4", "libx264", pix_fmt="yuv420p10le", gop=10, decoder="h264"),
    "mkv-ffv1-10bit": Case("tenbit.mkv", "ffv1", pix_fmt="yuv420p10le", decoder="ffv1"),
    "mkv-ffv1-odd-33x17": Case("odd.mkv", "ffv1", height=17, width=33, pix_fmt="yuv444p",
                               decoder="ffv1", max_mae=1.0),
    "mp4-h264-odd-33x17": Case("odd.mp4", "libx264", height=17, width=33, pix_fmt="yuv444p",
                               gop=10, decoder="h264"),
    "mp4-h264-vfr": Case("vfr.mp4", "libx264", gop=10, vfr=True, decoder="h264"),
    "mkv-h264-vfr": Case("vfr.mkv", "libx264", gop=10, vfr=True, decoder="h264"),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every Case encoded once per test module, keyed like CASES."""
    root = tmp_path_factory.mktemp("videos")
    out = {}
    for key, case in CASES.items():
        timing = dict(pts=VFR_PTS, time_base=Fraction(1, 1000)) if case.vfr else {}
        out[key] = make_video(root / case.file, case.codec, fmt=case.fmt, height=case.height,
                              width=case.width, pix_fmt=case.pix_fmt, gop=case.gop, **timing)
    return out


def assert_one_sentence(error: BaseException, *names: str) -> None:
    text = str(error)
    assert "\n" not in text and text.endswith("."), text
    assert "Traceback" not in text and "Errno" not in text, text
    for name in names:
        assert name in text, text


# --------------------------------------------------------------------------------------------------
# Reading every format


@pytest.mark.parametrize("key", list(CASES))
def test_probe_and_read_every_format(videos: dict[str, Path], key: str) -> None:
    case, path = CASES[key], videos[key]
    info = probe_video(path)
    assert isinstance(info, VideoInfo)
    assert (info.width, info.height, info.frame_count) == (case.width, case.height, N)
    assert info.codec == case.decoder
    assert info.pix_fmt == case.pix_fmt
    assert info.variable_frame_rate is case.vfr
    assert isinstance(info.fps, Fraction)
    if case.vfr:  # measured mean rate: 29 gaps over 1.8 s
        assert info.fps == Fraction(N - 1) / Fraction(VFR_PTS[-1] - VFR_PTS[0], 1000)
    else:
        assert info.fps == 25
    fast = probe_video(path, exact=False)  # packet counting agrees on all of these
    assert fast == info

    frames = read_frames(path)
    assert frames.shape == (N, case.height, case.width, 3) and frames.dtype == np.uint8
    source = synthetic(N, case.height, case.width).astype(np.int16)
    errors = np.abs(frames[:, None].astype(np.int16) - source[None]).mean(axis=(2, 3, 4))
    assert errors.diagonal().max() < case.max_mae
    # Display order: each decoded frame is closest to the source frame with its own index.
    assert (errors.argmin(axis=1) == np.arange(N)).all()


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


class DecodeCounter:
    """Wraps video_io._decoded to count decoded frames and container opens."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.frames = 0
        self.opens = 0
        decoded, open_ = video_io._decoded, video_io._Input.open

        def counting_decoded(*args):
            for frame in decoded(*args):
                self.frames += 1
                yield frame

        def counting_open(src):
            self.opens += 1
            return open_(src)

        monkeypatch.setattr(video_io, "_decoded", counting_decoded)
        monkeypatch.setattr(video_io._Input, "open", counting_open)


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


# --------------------------------------------------------------------------------------------------
# Bad input


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


# --------------------------------------------------------------------------------------------------
# Writing


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
