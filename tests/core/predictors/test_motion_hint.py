import dataclasses
from fractions import Fraction

import numpy as np
import pytest
import torch

from evc_archive.core.bitstream import Stream, pack, unpack
from evc_archive.core.decoder import open_stream
from evc_archive.core.encoder import encode_video
from evc_archive.core.errors import BitstreamError
from evc_archive.core.keyframes.av1_intra import AV1IntraCodec
from evc_archive.core.model_library import ModelLibrary
from evc_archive.core.predictors.copy_last import CopyLastFramePredictor
from evc_archive.core.predictors.motion_hint import (
    GlobalMotionPredictor,
    global_shift,
    pack_velocity,
    unpack_velocity,
    unzigzag,
    zigzag,
)
from evc_archive.core.ratecontrol import SegmentSimulator
from evc_archive.core.registry import PREDICTORS
from evc_archive.core.settings import EncoderSettings


def panning_video(n: int = 12, h: int = 48, w: int = 64, step: float = 1.5) -> torch.Tensor:
    """(n,h,w,3) uint8: a camera panning right over a smooth random texture, `step` px a frame."""
    rng = np.random.default_rng(3)
    big = np.kron(rng.integers(0, 256, (h // 4 + 2, (w + int(n * step)) // 4 + 4, 3)), np.ones((4, 4, 1)))
    yy = np.arange(h)[:, None]
    frames = []
    for t in range(n):
        x = np.arange(w)[None, :] + t * step
        x0 = np.floor(x).astype(int)
        f = x - x0
        frames.append(((1 - f)[..., None] * big[yy, x0] + f[..., None] * big[yy, x0 + 1]).round().astype(np.uint8))
    return torch.from_numpy(np.stack(frames))


def test_hint_coding():
    assert [zigzag(x) for x in (0, -1, 1, -2, 2)] == [0, 1, 2, 3, 4]
    assert all(unzigzag(zigzag(x)) == x for x in range(-300, 300))
    assert pack_velocity(0, 0) == b"" and unpack_velocity(b"") == (0, 0)
    assert unpack_velocity(pack_velocity(-7, 130)) == (-7, 130)
    with pytest.raises(BitstreamError):
        unpack_velocity(pack_velocity(1, 1) + b"\x00")


def test_global_shift_finds_the_pan():
    video = panning_video(step=1.5).numpy()
    dy, dx = global_shift(video[0], video[2], 8)  # content moves left as the camera pans right
    assert abs(dy) < 0.3 and abs(dx + 3.0) < 0.5


def test_tiny_frames_have_no_motion():
    video = panning_video(3, 3, 3).numpy()
    assert global_shift(video[0], video[1], 8) == (0.0, 0.0)
    assert GlobalMotionPredictor().hint_candidates(torch.from_numpy(video[:1]), torch.from_numpy(video[1:])) == [b""]


def test_fitting_every_target_offers_more_velocities():
    """With `fit_every_target` the encoder also measures the middle targets and fits one velocity to
    all of them; the default candidates come from the first and last only, as kind 3 streams were
    written. An accelerating pan (0.5, 1.5, 3, 5 px) gives a different velocity at each distance."""
    video = panning_video(21, step=0.25)[[0, 2, 6, 12, 20]]
    plain = GlobalMotionPredictor(frames_per_call=4).hint_candidates(video[:1], video[1:])
    every = GlobalMotionPredictor(frames_per_call=4, fit_every_target=True).hint_candidates(video[:1], video[1:])
    assert every[:1] == [b""] and set(plain) < set(every) and len(every) == len(set(every))
    last, tg = video[0].numpy(), video[1:].numpy()
    shifts = [global_shift(last, tg[m - 1], 12 * m) for m in range(1, 5)]
    fit = [sum(m * s[k] for m, s in zip(range(1, 5), shifts)) / 30 for k in (0, 1)]
    assert pack_velocity(int(round(fit[0] * 4)), int(round(fit[1] * 4))) in every
    assert all(unpack_velocity(h)[1] < 0 for h in every[1:])  # content moves left


def test_still_hint_is_copy_last_and_prediction_is_deterministic():
    video = panning_video()
    p = GlobalMotionPredictor(frames_per_call=3)
    assert torch.equal(p.predict(video[:1], b"", 0, 1), CopyLastFramePredictor(frames_per_call=3).predict(video[:1], b"", 0, 1))
    a = p.predict(video[:1], pack_velocity(1, -6), 0, 1)
    assert torch.equal(a, p.predict(video[:1], pack_velocity(1, -6), 0, 1))
    assert a.shape == (3, 48, 64, 3) and a.dtype == torch.uint8


def test_hints_beat_copy_last_on_a_pan_and_round_trip(lpips_metric):
    """Same threshold: the hinted predictor codes fewer frames; the v2 stream decodes bit-exactly from
    (id, hash) alone, and rate control's simulation gives the same bytes as the real encode."""
    video = panning_video(16)
    codec = AV1IntraCodec()
    settings = EncoderSettings(lpips_threshold=0.12, quality=7, gop=16, sampling_steps=1, seed=0)
    hinted = encode_video([video], Fraction(25), codec, GlobalMotionPredictor(), lpips_metric, settings)
    copy = encode_video([video], Fraction(25), codec, CopyLastFramePredictor(), lpips_metric, settings)
    seg = hinted.stream.segments[0]
    assert sum(seg.coded) < sum(copy.stream.segments[0].coded)
    assert seg.hints and hinted.data[4] == 2 and copy.data[4] == 1
    assert hinted.stream.header.predictor_model_id == 3 == PREDICTORS.named("motion-hint").kind_id
    assert PREDICTORS.by_id(3).label == "global-motion-hint"
    decoded = next(open_stream(hinted.data, ModelLibrary()).segments())
    assert torch.equal(decoded, hinted.results[0].reconstruction)
    sim = SegmentSimulator(video, codec, GlobalMotionPredictor(), lpips_metric, settings)
    assert sim.run(settings.quality, settings.lpips_threshold).bytes == len(hinted.data)
    # a stream missing a hint, or with one too many, is refused
    for hints in (seg.hints[:-1], seg.hints + (b"",)):
        bad = Stream(hinted.stream.header, (dataclasses.replace(seg, hints=hints),))
        with pytest.raises(BitstreamError, match="hints"):
            next(open_stream(pack(bad), ModelLibrary()).segments())
    assert unpack(hinted.data).segments == hinted.stream.segments


def test_residual_frames_against_hinted_predictions_round_trip(lpips_metric):
    """A tight threshold on a pan: rejected frames coded against the hinted prediction; the decoder
    makes the call (and reads its hint) for them too; simulation and real encode agree."""
    video = panning_video(16)
    codec = AV1IntraCodec()
    settings = EncoderSettings(lpips_threshold=0.03, quality=5, gop=16, sampling_steps=1, seed=0, residual_levels=3)
    enc = encode_video([video], Fraction(25), codec, GlobalMotionPredictor(), lpips_metric, settings)
    seg = enc.stream.segments[0]
    assert sum(f.mode for f in seg.frames) >= 1 and enc.data[4] == 3
    decoded = next(open_stream(enc.data, ModelLibrary()).segments())
    assert torch.equal(decoded, enc.results[0].reconstruction)
    sim = SegmentSimulator(video, codec, GlobalMotionPredictor(), lpips_metric, settings)
    assert sim.run(settings.quality, settings.lpips_threshold).bytes == len(enc.data)
    intra_only = encode_video([video], Fraction(25), codec, GlobalMotionPredictor(), lpips_metric,
                              dataclasses.replace(settings, residual_levels=None))
    print(len(enc.data), float(enc.results[0].lpips.mean()), sum(seg.coded), len(intra_only.data),
          float(intra_only.results[0].lpips.mean()), sum(intra_only.stream.segments[0].coded))
