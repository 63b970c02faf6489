import hashlib
from fractions import Fraction

import numpy as np
import pytest
import torch

from evc_archive.core.decoder import open_stream
from evc_archive.core.encoder import encode_video
from evc_archive.core.errors import ModelMismatchError
from evc_archive.core.model_library import ModelLibrary
from evc_archive.core.motion import MotionConfig, block_vectors, luma, warp
from evc_archive.core.predictors.copy_last import CopyLastFramePredictor
from evc_archive.core.predictors.motion_extrapolation import MotionExtrapolationPredictor
from evc_archive.core.registry import PREDICTORS
from evc_archive.core.settings import EncoderSettings
from tests.conftest import moving_square_video


def test_block_matching_finds_a_global_shift():
    rng = np.random.default_rng(0)
    prev = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    last = np.roll(prev, (2, -3), axis=(0, 1))  # content moved down 2, left 3
    v = block_vectors(luma(prev), luma(last), MotionConfig(block=16, search=4, median=False))
    inner = v[1:-1, 1:-1].reshape(-1, 2)  # edge blocks see the wrapped border
    assert (inner == [2, -3]).all()


def test_warp_by_whole_pixels_is_a_shift():
    frame = np.random.default_rng(1).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    d = np.zeros((20, 24, 2))
    d[..., 1] = 2.0
    out = warp(frame, d)
    assert np.array_equal(out[:, 2:], frame[:, :-2])
    assert np.array_equal(warp(frame, np.zeros((20, 24, 2))), frame)


def textured_square_video(n: int = 8, h: int = 64, w: int = 80, step: int = 2) -> torch.Tensor:
    """(n,h,w,3) uint8: a noise-textured 24x24 square moving right by `step` px a frame over a
    smooth background (an object large enough for 16 px blocks to see)."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:h, 0:w]
    background = np.stack([xx * 2, yy * 3, (xx + yy) * 1], -1).astype(np.uint8)
    patch = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    frames = []
    for t in range(n):
        f = background.copy()
        f[20:44, 8 + step * t : 32 + step * t] = patch
        frames.append(f)
    return torch.from_numpy(np.stack(frames))


def test_follows_a_moving_square_better_than_copy_last():
    video = textured_square_video()
    motion, copy = MotionExtrapolationPredictor(frames_per_call=3), CopyLastFramePredictor(frames_per_call=3)
    target = video[4:7].double()
    err_motion = (motion.predict(video[2:4], b"", 0, 1).double() - target).square().mean()
    err_copy = (copy.predict(video[2:4], b"", 0, 1).double() - target).square().mean()
    assert err_motion < 0.5 * err_copy


def test_deterministic_and_golden():
    """Same output on every call and every thread count; the digest pins the algorithm (a change
    here changes decoded archives: bump the config key, never silently)."""
    video = textured_square_video()
    p = MotionExtrapolationPredictor(frames_per_call=4)
    a = p.predict(video[2:4], b"", 0, 1)
    torch.set_num_threads(1)
    try:
        b = p.predict(video[2:4], b"", 99, 7)  # seed and steps are ignored
    finally:
        torch.set_num_threads(2)
    assert a.shape == (4, 64, 80, 3) and a.dtype == torch.uint8
    assert torch.equal(a, b)
    assert hashlib.sha256(a.numpy().tobytes()).hexdigest()[:16] == GOLDEN


GOLDEN = "628982c2ead08bfc"


def test_single_frame_context_copies():
    video = moving_square_video(3, 32, 40)
    out = MotionExtrapolationPredictor(frames_per_call=2).predict(video[:1], b"", 0, 1)
    assert torch.equal(out, video[:1].expand(2, -1, -1, -1))


def test_registered_under_its_frozen_id():
    assert PREDICTORS.by_id(2).label == "motion-extrapolation" and PREDICTORS.named("motion").kind_id == 2
    lib = ModelLibrary()
    p = lib.predictor_named("motion", frames_per_call=3)
    assert isinstance(p, MotionExtrapolationPredictor) and p.frames_per_call == 3
    assert lib.predictor(2, p.content_hash[:8], 3).content_hash == p.content_hash
    other = MotionExtrapolationPredictor(config=MotionConfig(block=8))
    with pytest.raises(ModelMismatchError, match="motion-extrapolation"):
        lib.predictor(2, other.content_hash[:8], 4)
    with pytest.raises(ValueError, match="Invalid predictor"):
        lib.predictor_named("optical-flow")


def test_round_trip_through_the_bitstream(tiny_codec, lpips_metric):
    predictor = MotionExtrapolationPredictor(frames_per_call=3)
    frames = moving_square_video(16, 40, 56)
    settings = EncoderSettings(lpips_threshold=0.05, quality=1, gop=8, sampling_steps=1, seed=3)
    enc = encode_video([frames[:8], frames[8:]], Fraction(25), tiny_codec, predictor, lpips_metric, settings)
    assert enc.stream.header.predictor_model_id == 2
    lib = ModelLibrary()
    lib.register(tiny_codec)  # the predictor is not registered: the library builds it from (id, hash)
    decoded = torch.cat(list(open_stream(enc.data, lib).segments()))
    assert torch.equal(decoded, torch.cat([r.reconstruction for r in enc.results]))
