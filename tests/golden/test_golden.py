"""Golden streams (tests/golden/recipe.py: every bit-exact predictor and keyframe codec) decode to the committed frame hashes under every
setting that may change a float kernel's result: oneDNN's instruction set, ATen's vector width,
the thread count, oneDNN off, and CUDA (`gpu` marker); a stream encoded under one setting decodes
to the encoder's frames under another. Each setting runs in its own process (the variables are
read when torch loads)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from evc_archive.core.bitstream import unpack
from evc_archive.core.kernel_settings import KernelSetting, cpu_matrix, decode_under, run_module_under
from evc_archive.core.registry import KEYFRAME_CODECS
from evc_archive.core.registry import PREDICTORS as KINDS
from evc_archive.core.registry import float_models_of
from tests.golden.make import describe
from tests.golden.recipe import (
    EXPECTED,
    GOLDEN_DIR,
    KEYFRAME_CODEC_STREAMS,
    PREDICTORS,
    STREAMS,
    WITH_INTER,
    decode,
    frames_sha256,
    recipe_of,
    stream_path,
)

ROOT = GOLDEN_DIR.parent.parent


def expected() -> dict:
    return json.loads(EXPECTED.read_text())


def golden_hashes_under(setting: KernelSetting) -> dict:
    """Decode every golden stream in a fresh process under setting -> (its JSON line, name -> SHA-256)."""
    result = decode_under(setting, [stream_path(n) for n in STREAMS])
    return result, {Path(f).stem: s["sha256"] for f, s in result["streams"].items()}


def test_goldens_cover_every_bit_exact_kind_and_segment_kind():
    exp = expected()
    assert set(PREDICTORS) == {s.name for s in KINDS.specs() if s.bit_exact}  # every integer predictor
    assert {"svtav1", *KEYFRAME_CODEC_STREAMS.values()} == {s.name for s in KEYFRAME_CODECS.specs() if s.bit_exact}
    assert set(STREAMS) == set(exp)
    for name in STREAMS:
        data = stream_path(name).read_bytes()
        stream = unpack(data)
        codec, predictor = recipe_of(name)
        assert KINDS.by_id(stream.header.predictor_model_id).name == predictor
        assert KEYFRAME_CODECS.by_id(stream.header.keyframe_model_id).name == codec
        assert float_models_of(stream.header.keyframe_model_id, stream.header.predictor_model_id) == ()
        facts = describe(stream)
        assert {k: exp[name][k] for k in facts} == facts and exp[name]["bytes"] == len(data)
        assert facts["coded_frames"] >= 2 and facts["generated_frames"] >= 4 and facts["residual_frames"] >= 1
        assert facts["inter_segments"] == (name == WITH_INTER)
        if KINDS.named(predictor).takes_hints:  # at least one call moves its frame
            assert any(h for seg in stream.segments for h in seg.hints), name
    assert exp[WITH_INTER]["restored_calls"] >= 1 and exp[WITH_INTER]["version"] == 5
    assert exp["refine-diffusion"]["steered_calls"] >= 1 and exp["refine-diffusion"]["version"] == 8
    assert len({e["sha256"] for e in exp.values()}) == len(exp)  # each stream's frames are its own


def test_goldens_decode_in_this_process():
    for name, e in expected().items():
        frames = decode(stream_path(name).read_bytes())
        assert frames.shape[0] == e["frames"]
        assert frames_sha256(frames) == e["sha256"], name


@pytest.mark.slow
@pytest.mark.parametrize("setting", cpu_matrix(), ids=lambda s: s.label)
def test_goldens_decode_identically_under(setting):
    result, hashes = golden_hashes_under(setting)
    assert result["mkldnn"] == setting.mkldnn
    if setting.threads:
        assert result["threads"] == setting.threads
    if setting.aten:
        assert result["cpu_capability"].lower() == setting.aten.lower()
    assert hashes == {name: e["sha256"] for name, e in expected().items()}


@pytest.mark.slow
def test_isa_setting_reaches_onednn():
    """The matrix means something only if the decode runs oneDNN convolutions and oneDNN obeys the
    variable: its verbose log names the ISA, and the restoration's convolutions ran its SSE4.1 kernels."""
    os.environ["ONEDNN_VERBOSE"] = "1"
    try:
        _, log = run_module_under(KernelSetting("SSE41", threads=1), "evc_archive.core.kernel_settings",
                                  str(stream_path(WITH_INTER)))
    finally:
        del os.environ["ONEDNN_VERBOSE"]
    assert "isa:Intel SSE4.1" in log, log[-2000:]
    assert any(",convolution,jit:sse41," in line and "ic48oc48" in line for line in log.splitlines()), log[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("name, encode_at, decode_at", [
    (WITH_INTER, KernelSetting("SSE41", "default", 1), KernelSetting(None, "avx2", 2)),
    (WITH_INTER, KernelSetting(None, "avx2", 2), KernelSetting("SSE41", "default", 1)),
    ("keyframes-hyperprior-int", KernelSetting(None, "avx2", 2), KernelSetting("SSE41", "default", 1))],
    ids=("sse41-to-avx2", "avx2-to-sse41", "learned-keyframes-avx2-to-sse41"))
def test_encoded_under_one_setting_decoded_under_another(tmp_path, name, encode_at, decode_at):
    path = tmp_path / "clip.evc"
    encoded, _ = run_module_under(encode_at, "tests.golden.encode", name, "--out", str(path), root=ROOT)
    decoded = decode_under(decode_at, [path])
    assert decoded["streams"][path.name]["sha256"] == encoded["sha256"]


@pytest.mark.gpu
def test_goldens_decode_identically_on_cuda():
    assert torch.cuda.is_available(), "the gpu tests need a CUDA device (run them with -m gpu where one is)"
    _, hashes = golden_hashes_under(KernelSetting(device="cuda"))
    assert hashes == {name: e["sha256"] for name, e in expected().items()}
