import hashlib
from fractions import Fraction

import numpy as np
import pytest
import torch

from evc_archive.core.decoder import open_stream
from evc_archive.core.encoder import encode_video
from evc_archive.core.source_scores import psnr_frames
from evc_archive.core.errors import BitstreamError, ModelMismatchError
from evc_archive.core.keyframes.av1_intra import (LARGE_FRAME_PRESET, PRESET, AV1IntraCodec, preset_for,
                                                 rgb_to_yuv420, yuv420_to_rgb)
from evc_archive.core.model_library import ModelLibrary
from evc_archive.core.predictors.motion_extrapolation import MotionExtrapolationPredictor
from evc_archive.core.registry import KEYFRAME_CODECS
from evc_archive.core.settings import EncoderSettings
from tests.conftest import moving_square_video

CODEC = AV1IntraCodec()


def test_rate_and_quality_grow_with_the_level():
    frame = moving_square_video(1, 64, 64)[0]
    sizes, psnrs = [], []
    for q in (1, 9, 17):  # CRF 63, 47, 31
        payload = CODEC.encode(frame, q)
        sizes.append(len(payload))
        psnrs.append(float(psnr_frames(CODEC.decode(payload, q, 64, 64)[None], frame[None])[0]))
    assert sizes[0] < sizes[1] < sizes[2]
    assert psnrs[0] < psnrs[1] < psnrs[2] and psnrs[2] > 24
    assert CODEC.qualities == tuple(range(1, 26))
    assert CODEC.crf_by_quality[15] == 35  # the CLI's default level
    with pytest.raises(ValueError, match="Invalid quality"):
        CODEC.encode(frame, 26)


def test_the_preset_follows_the_frame_area():
    """Preset 1 below 640x360, preset 3 from there up (portrait the same); the default codec encodes a
    large frame as preset 3 does, a small one as preset 1 does, and either decodes alike."""
    assert preset_for(128, 128) == preset_for(359, 640) == PRESET == 1
    assert preset_for(360, 640) == preset_for(640, 360) == preset_for(1080, 1920) == LARGE_FRAME_PRESET == 3
    large = moving_square_video(1, 360, 640)[0]
    small = moving_square_video(1, 64, 64)[0]
    by_size = CODEC.encode(large, 12)
    assert by_size == AV1IntraCodec(preset=3).encode(large, 12) != AV1IntraCodec(preset=1).encode(large, 12)
    assert CODEC.encode(small, 12) == AV1IntraCodec(preset=1).encode(small, 12)
    assert CODEC.decode(by_size, 12, 360, 640).shape == (360, 640, 3)


def test_colour_conversion_is_near_lossless_and_pinned():
    """The conversion is part of the format (the decoder's output depends on it): pinned by digest."""
    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(0, 256, (8, 8, 3)), np.ones((4, 4, 1))).astype(np.uint8)  # 2x2-constant chroma
    back = yuv420_to_rgb(*rgb_to_yuv420(smooth))
    interior = np.abs(back.astype(int) - smooth)[1::4, 1::4]  # chroma filtering blurs only tile edges
    assert interior.max() <= 3
    gray = np.full((4, 6, 3), 77, np.uint8)
    assert np.array_equal(yuv420_to_rgb(*rgb_to_yuv420(gray)), gray)
    planes = (rng.integers(0, 256, (16, 12), dtype=np.uint8), rng.integers(0, 256, (8, 6), dtype=np.uint8),
              rng.integers(0, 256, (8, 6), dtype=np.uint8))
    assert hashlib.sha256(yuv420_to_rgb(*planes).tobytes()).hexdigest()[:16] == GOLDEN


GOLDEN = "42f6022a6d04a2be"


def test_damaged_payload_is_refused():
    frame = moving_square_video(1, 32, 32)[0]
    payload = CODEC.encode(frame, 3)
    with pytest.raises(BitstreamError):
        CODEC.decode(payload[: len(payload) // 3], 3, 32, 32)
    with pytest.raises(BitstreamError):
        CODEC.decode(payload, 3, 64, 32)  # not the stream's size


def test_registry_resolves_the_weightless_codec():
    assert KEYFRAME_CODECS.by_id(2).label == "keyframe-av1-intra" and KEYFRAME_CODECS.named("svtav1").kind_id == 2
    lib = ModelLibrary()
    assert isinstance(lib.keyframe_named("svtav1"), AV1IntraCodec)
    assert lib.keyframe(2, CODEC.content_hash[:8]).content_hash == CODEC.content_hash
    with pytest.raises(ModelMismatchError, match="keyframe-av1-intra"):
        lib.keyframe(2, bytes(8))
    with pytest.raises(ValueError, match="Invalid keyframe codec"):
        lib.keyframe_named("jpeg")


def test_stream_round_trip_with_motion_predictor(lpips_metric):
    """Header carries keyframe id 2; the decoder rebuilds both models from (id, hash) alone and
    reproduces the encoder's reconstruction bit for bit (odd frame size)."""
    frames = moving_square_video(14, 35, 51)
    settings = EncoderSettings(lpips_threshold=0.08, quality=4, gop=7, sampling_steps=1, seed=1)
    enc = encode_video([frames[:7], frames[7:]], Fraction(25), CODEC, MotionExtrapolationPredictor(frames_per_call=3),
                       lpips_metric, settings)
    h = enc.stream.header
    assert (h.keyframe_model_id, h.predictor_model_id) == (2, 2)
    assert 1 < sum(sum(s.coded) for s in enc.stream.segments) < 14
    decoded = torch.cat(list(open_stream(enc.data, ModelLibrary()).segments()))
    assert torch.equal(decoded, torch.cat([r.reconstruction for r in enc.results]))
