"""The command line, end to end in subprocesses (the shipped default models)."""

import re
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from evc_archive.io.video_probe import probe_video
from evc_archive.io.video_read import read_frames
from evc_archive.io.video_write import write_video
from tests.conftest import moving_square_video

pytestmark = pytest.mark.slow


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "evc_archive.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def source_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "source.mp4"
    write_video(path, moving_square_video(14, 34, 50).numpy(), Fraction(30000, 1001), crf=12)
    return path


@pytest.fixture(scope="module")
def encoded(source_video):
    out = source_video.with_name("clip.evc")
    result = cli("encode", source_video, out, "--gop", "6", "--lpips-threshold", "0.3", "--predictor", "copy-last")
    assert result.returncode == 0, result.stderr
    return out, result


def test_help_explains_every_command_and_option():
    result = cli("--help")
    assert result.returncode == 0
    for command in ("encode", "decode", "inspect", "demo"):
        assert command in result.stdout
    enc = cli("encode", "--help").stdout
    for option in ("--lpips-threshold", "--quality", "--gop", "--steps", "--seed", "--predictor"):
        assert option in enc


def test_encode_decode_round_trip_keeps_count_size_rate(source_video, encoded, tmp_path):
    stream, result = encoded
    assert "bpp" in result.stdout
    out1, out2 = tmp_path / "a.mkv", tmp_path / "b.mkv"
    assert cli("decode", stream, out1).returncode == 0
    assert cli("decode", stream, out2).returncode == 0
    src, dec = probe_video(source_video), probe_video(out1)
    assert (dec.frame_count, dec.width, dec.height) == (src.frame_count, src.width, src.height) == (14, 50, 34)
    assert dec.fps == src.fps == Fraction(30000, 1001)
    assert np.array_equal(read_frames(out1), read_frames(out2))  # decoding is repeatable, bit-exact


def test_mp4_output(encoded, tmp_path):
    stream, _ = encoded
    out = tmp_path / "c.mp4"
    assert cli("decode", stream, out, "--crf", "20").returncode == 0
    assert probe_video(out).frame_count == 14


def test_inspect_shows_segments_and_bpp(encoded):
    stream, _ = encoded
    result = cli("inspect", stream)
    assert result.returncode == 0
    assert "bpp" in result.stdout and "segment" in result.stdout
    assert result.stdout.count("C") >= 3  # one coded frame at least per segment (3 segments)


def test_inspect_says_whether_a_decode_is_bit_exact_anywhere(tmp_path):
    """The golden restore-hint-int stream is integer-only (version 5); the same stream naming the
    float parent (kind 6) depends on the platform, and says which model makes it so."""
    import dataclasses

    from evc_archive.core.bitstream import Stream, pack, unpack
    from tests.golden.recipe import stream_path

    def table_text(path) -> str:
        result = cli("inspect", path)
        assert result.returncode == 0, result.stderr
        return " ".join(re.sub("[\u2500-\u257f]", " ", result.stdout).split())  # without the box drawing

    out = table_text(stream_path("restore-hint-int"))
    assert "format version 5" in out and "bit-exact decode yes: integer arithmetic only" in out
    stream = unpack(stream_path("restore-hint-int").read_bytes())
    float_stream = tmp_path / "float.evc"
    float_stream.write_bytes(pack(Stream(dataclasses.replace(stream.header, predictor_model_id=6), stream.segments)))
    out = table_text(float_stream)
    assert "format version 4" in out and "no: depends on the platform (float models: restore-motion-hint-lanczos)" in out


def test_residual_and_intra_only_options(source_video, tmp_path):
    """Default: rejected frames may be residuals (inspect marks them R, stream v3); --intra-only never."""
    outs = {}
    for name, extra in (("residual", ["--residual-levels", "2"]), ("intra", ["--intra-only"])):
        outs[name] = tmp_path / f"{name}.evc"
        result = cli("encode", source_video, outs[name], "--gop", "14", "--lpips-threshold", "0.02", "--quality", "6",
                     "--predictor", "copy-last", *extra)
        assert result.returncode == 0, result.stderr
    import re

    from evc_archive.core.bitstream import unpack

    modes = {name: [f.mode for seg in unpack(path.read_bytes()).segments for f in seg.frames] for name, path in outs.items()}
    assert 1 in modes["residual"] and outs["residual"].read_bytes()[4] == 3
    assert set(modes["intra"]) == {0} and outs["intra"].read_bytes()[4] in (1, 2)
    assert re.search(r"\b\d+r\b", cli("inspect", outs["residual"]).stdout)  # qualities mark residual frames
    assert not re.search(r"\b\d+r\b", cli("inspect", outs["intra"]).stdout)
    bad = cli("encode", source_video, tmp_path / "x.evc", "--residual-levels", "-1")
    assert bad.returncode == 1 and "--residual-levels" in bad.stderr and not (tmp_path / "x.evc").exists()


def test_damaged_stream_is_one_line_error_and_no_output(encoded, tmp_path):
    stream, _ = encoded
    data = bytearray(stream.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "bad.evc"
    bad.write_bytes(bytes(data))
    out = tmp_path / "never.mkv"
    result = cli("decode", bad, out)
    assert result.returncode == 1
    assert "CRC" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
    truncated = tmp_path / "short.evc"
    truncated.write_bytes(stream.read_bytes()[:-10])
    result = cli("inspect", truncated)
    assert result.returncode == 1 and "truncated" in result.stderr


@pytest.mark.parametrize("content", [b"", b"this is not a video at all"])
def test_bad_input_video_is_one_line_error(tmp_path, content):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    result = cli("encode", bad, tmp_path / "x.evc")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "error" in result.stderr
    assert not (tmp_path / "x.evc").exists()


def test_missing_input_and_bad_options(tmp_path):
    assert cli("encode", tmp_path / "nope.mp4", tmp_path / "x.evc").returncode == 1
    result = cli("encode", tmp_path / "nope.mp4", tmp_path / "x.evc", "--gop", "0")
    assert result.returncode == 1 and "--gop" in result.stderr
    result = cli("decode", tmp_path / "nope.evc", tmp_path / "x.mkv")
    assert result.returncode == 1


def test_sample_corpus_and_search_option(tmp_path):
    from evc_archive.io.sample import SAMPLE_CORPUS

    result = cli("sample-corpus", tmp_path / "sample")
    assert result.returncode == 0, result.stderr
    for name, frames, h, w, _ in SAMPLE_CORPUS:
        info = probe_video(tmp_path / "sample" / f"{name}.mkv")
        assert (info.frame_count, info.height, info.width) == (frames, h, w)
    assert max(h * w for _, _, h, w, _ in SAMPLE_CORPUS) >= 640 * 360
    result = cli("encode", tmp_path / "sample" / "meadow.mkv", tmp_path / "x.evc", "--search", "nearest")
    assert result.returncode == 1 and "--search" in result.stderr and "Traceback" not in result.stderr
    assert "--search" in cli("submit", "--help").stdout and "--worker-memory-gib" in cli("submit", "--help").stdout


def test_demo_runs_the_embedded_sample(tmp_path):
    result = cli("demo", "--out", tmp_path / "demo")
    assert result.returncode == 0, result.stderr
    assert probe_video(tmp_path / "demo" / "sample.decoded.mkv").frame_count == 60


def test_cli_choices_match_the_registry():
    from typer.testing import CliRunner

    from evc_archive.cli import app
    from evc_archive.core.registry import KEYFRAME_CODECS, PREDICTORS

    assert set(PREDICTORS.choices()) == {s.name for s in PREDICTORS.specs() if s.encodable}
    assert set(KEYFRAME_CODECS.choices()) == {s.name for s in KEYFRAME_CODECS.specs() if s.encodable}
    assert "hyperprior" not in KEYFRAME_CODECS.choices()  # the float form is decode-only
    help_text = CliRunner().invoke(app, ["encode", "--help"], terminal_width=400).stdout
    assert all(f"'{name}'" in help_text for name in PREDICTORS.choices() + KEYFRAME_CODECS.choices())


def test_cli_default_predictor_is_the_products():
    from evc_archive.cli.options import DEFAULT_PREDICTOR
    from evc_archive.core.registry import DEFAULT_PREDICTOR as CORE_DEFAULT
    from evc_archive.distributed.submit import SubmitConfig

    assert DEFAULT_PREDICTOR == CORE_DEFAULT == SubmitConfig("a", "b").predictor


def test_cli_residual_default_matches_the_core():
    from evc_archive.cli.options import PRODUCT, coding_settings
    from evc_archive.core.loop import DEFAULT_RESIDUAL_LEVELS

    assert PRODUCT.residual_levels == DEFAULT_RESIDUAL_LEVELS
    args = (0.3, None, 30, 1, 0, "restore-hint-int", "svtav1", 3)
    assert coding_settings(*args, intra_only=True).residual_levels is None
    assert coding_settings(*args, intra_only=False).residual_levels == 3


def test_keyframe_codec_and_predictor_options_round_trip(source_video, tmp_path):
    out = tmp_path / "av1.evc"
    result = cli("encode", source_video, out, "--gop", "7", "--keyframe-codec", "svtav1", "--predictor", "copy-last")
    assert result.returncode == 0, result.stderr
    assert "keyframe-av1-intra" in cli("inspect", out).stdout
    assert cli("decode", out, tmp_path / "av1.mkv").returncode == 0
    assert probe_video(tmp_path / "av1.mkv").frame_count == 14
    bad = cli("encode", source_video, tmp_path / "x.evc", "--keyframe-codec", "jpeg")
    assert bad.returncode == 1 and "--keyframe-codec must be one of" in bad.stderr
    decode_only = cli("encode", source_video, tmp_path / "x.evc", "--predictor", "motion")
    assert decode_only.returncode == 1 and "--predictor must be one of" in decode_only.stderr


def test_inter_segments_inspect_and_decode(source_video, tmp_path):
    """A stream whose segment is one AV1 inter GOP (what rate control picks where it wins): inspect
    says so, decode gives the encoder's frames; --no-inter is documented where rate control runs."""
    import torch

    from evc_archive.core.encoder import encode_video
    from evc_archive.core.metrics import shared_lpips
    from evc_archive.core.model_library import ModelLibrary
    from evc_archive.core.settings import EncoderSettings

    lib = ModelLibrary()
    frames = torch.from_numpy(read_frames(source_video))
    enc = encode_video([frames[:7], frames[7:]], Fraction(25), lib.keyframe_named("svtav1"),
                       lib.predictor_named("copy-last"), shared_lpips(), EncoderSettings(gop=7, inter_level=30))
    stream = tmp_path / "inter.evc"
    stream.write_bytes(enc.data)
    shown = cli("inspect", stream)
    assert shown.returncode == 0 and shown.stdout.count("inter 30") == 2, shown.stdout
    out = tmp_path / "inter.mkv"
    assert cli("decode", stream, out).returncode == 0
    assert np.array_equal(read_frames(out), torch.cat([r.reconstruction for r in enc.results]).numpy())
    for command in ("submit", "compare"):
        assert "--no-inter" in cli(command, "--help").stdout
