"""The refine-diffusion predictor (kind 9): restore-hint-int's frames plus sampled detail; hints
carry the steered noises' codebook indices; streams name one file and decode bit-exactly."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from evc_archive.core.bitstream import unpack
from evc_archive.core.decoder import open_stream
from evc_archive.core.encoder import encode_video
from evc_archive.core.errors import BitstreamError
from evc_archive.core.int_refine import IntRefiner
from evc_archive.core.int_restore import IntRestorer
from evc_archive.core.keyframes.av1_intra import AV1IntraCodec
from evc_archive.core.model_library import ModelLibrary
from evc_archive.core.predictors.motion_hint import pack_velocity
from evc_archive.core.predictors.refine_diffusion import (
    CODEBOOK_SIZE,
    RefineDiffusionPredictor,
    pack_hint,
    predictor_for,
    unpack_hint,
)
from evc_archive.core.predictors.restore_hint import AS_DECODED, RestoreHintPredictor
from evc_archive.core.predictors.restore_hint import pack_hint as pack_base_hint
from evc_archive.core.ratecontrol import SegmentSimulator
from evc_archive.core.refine import RefineConfig, RefineNet, Refiner
from evc_archive.core.registry import PREDICTORS
from evc_archive.core.settings import EncoderSettings
from evc_archive.training.refine_quantize import quantize
from tests.core.predictors.test_motion_hint import panning_video
from tests.core.test_int_restore import int_restorer
from tests.core.test_refine import TINY, random_refiner


def int_refine_file(tmp_path, net: RefineNet | None = None, name: str = "refine-int.pt",
                    config: RefineConfig = TINY) -> Refiner:
    """A tiny refine model (random, or `net`) over a tiny integer restoration model, quantised and saved
    at tmp_path / name (calibrated on random contexts); returns the float model."""
    int_restorer(tmp_path / "restore-int.pt")
    base_model = (tmp_path / "restore-int.pt").read_bytes()
    if net is None:
        refiner = random_refiner(tmp_path / "refine.pt", base_model)
    else:
        Refiner.save(tmp_path / "refine.pt", config, net, base_model)
        refiner = Refiner.load(tmp_path / "refine.pt")
    gen = torch.Generator().manual_seed(1)
    condition = torch.rand(8, refiner.config.condition_channels, 16, 16, generator=gen) * 2 - 1
    target = (condition[:, :3] + 0.1 * torch.randn(8, 3, 16, 16, generator=gen)).clamp(-1, 1)
    IntRefiner.save(tmp_path / name, quantize(refiner.net, refiner.config, condition, target), base_model)
    return refiner


def refine_predictor(tmp_path, frames_per_call: int = 3, net: RefineNet | None = None,
                     config: RefineConfig = TINY) -> RefineDiffusionPredictor:
    """The integer predictor over int_refine_file's model (random where `net` is None), built as the
    registry builds it."""
    if net is None and config != TINY:
        torch.manual_seed(3)
        net = RefineNet(config)
        for q in net.parameters():
            torch.nn.init.normal_(q, std=0.05)
    int_refine_file(tmp_path, net, config=config)
    return PREDICTORS.named("refine-diffusion").build(str(tmp_path / "refine-int.pt"), frames_per_call, "cpu")


def test_hint_coding_and_damaged_hints():
    assert pack_hint([], b"") == b""  # unsteered, restored, still: nothing in the stream
    base = pack_base_hint(AS_DECODED, pack_velocity(1, -2))
    for steered in ([], [[0, 5, 63]], [[1, 2, 3], [4, 5, 6]], None):
        assert unpack_hint(pack_hint(steered, base), 3) == (steered, base)
    assert pack_hint(None, b"") == b"\x08"  # refinement off costs one byte
    with pytest.raises(BitstreamError, match="damaged"):
        unpack_hint(pack_hint([[1, 2, 3]], b"")[:-1], 3)  # truncated indices
    with pytest.raises(BitstreamError, match="codebook"):
        unpack_hint(pack_hint([[1, CODEBOOK_SIZE, 3]], b""), 3)
    with pytest.raises(BitstreamError, match="damaged"):
        unpack_hint(b"\x09" + bytes(40), 3)  # more steered steps than any stream samples


def test_prediction_is_the_base_frames_plus_sampled_detail(tmp_path):
    p = refine_predictor(tmp_path)
    assert isinstance(p.base_predictor, RestoreHintPredictor) and p.base_predictor.model_id == 7
    assert p.base_predictor.restorer.content_hash == IntRestorer.load(tmp_path / "restore-int.pt").content_hash
    assert p.content_hash == IntRefiner.load(tmp_path / "refine-int.pt").content_hash  # one file names the predictor
    video = panning_video(8, 32, 48)
    base = p.base_predictor.predict(video[:1], b"", 0, 1)
    for steps in (1, 2, 4):
        frames = p.predict(video[:1], b"", 9, steps)
        assert frames.shape == (3, 32, 48, 3) and torch.equal(frames, p.predict(video[:1], b"", 9, steps))
        assert not torch.equal(frames, base)
    assert not torch.equal(p.predict(video[:1], b"", 9, 2), p.predict(video[:1], b"", 10, 2))  # the seed's noise
    moved = pack_base_hint(AS_DECODED, pack_velocity(1, 2))
    assert torch.equal(p.predict(video[:1], pack_hint(None, moved), 9, 2), p.base_predictor.predict(video[:1], moved, 9, 2))
    with pytest.raises(ValueError, match="1 to 8"):
        p.predict(video[:1], b"", 9, 9)
    with pytest.raises(BitstreamError, match="steers more steps"):
        p.predict(video[:1], pack_hint([[1, 1, 1]], b""), 9, 1)


TWO_FRAMES = RefineConfig(channels=8, blocks=1, context_frames=2)


def test_a_model_with_decoded_frames_sees_the_last_two(tmp_path):
    p = refine_predictor(tmp_path, config=TWO_FRAMES)
    assert p.context_frames == 2
    video = panning_video(8, 32, 48)
    hint = pack_hint([], pack_base_hint(AS_DECODED, pack_velocity(0, 1)))
    two = p.predict(video[1:3], hint, 9, 2)
    assert torch.equal(two, p.predict(video[1:3], hint, 9, 2)) and two.shape == (3, 32, 48, 3)
    # the base frames come from the last frame alone, the refinement also sees the one before
    assert torch.equal(p.base_predictor.predict(video[1:3], hint[1:], 9, 2), p.base_predictor.predict(video[2:3], hint[1:], 9, 2))
    assert not torch.equal(two, p.predict(video[0:3:2], hint, 9, 2))
    assert torch.equal(p.predict(video[2:3], hint, 9, 2), p.predict(torch.stack([video[2], video[2]]), hint, 9, 2))


def hand_made_predictor(tmp_path, net: RefineNet, integer: bool) -> RefineDiffusionPredictor:
    """A predictor over `net` (config PASS), in its float or integer form."""
    refiner = int_refine_file(tmp_path, net, config=PASS)
    return predictor_for(IntRefiner.load(tmp_path / "refine-int.pt") if integer else refiner, 3)


PASS = RefineConfig(channels=24, blocks=1)


def _passthrough_net() -> RefineNet:
    """x0 estimate = x_t: the head splits each sample channel into its positive and negative parts,
    the block adds nothing, the tail puts them back together."""
    net = _zero_net(PASS)
    with torch.no_grad():
        for k in range(12):  # pixel-unshuffled channels: 0-11 the base frame, 12-23 the sample
            net.head.weight[k, 12 + k, 1, 1] = 1.0
            net.head.weight[12 + k, 12 + k, 1, 1] = -1.0
            net.tail.weight[k, k, 1, 1] = 1.0
            net.tail.weight[k, 12 + k, 1, 1] = -1.0
    return net


@pytest.mark.parametrize("integer", [False, True])
def test_a_zero_model_adds_nothing(tmp_path, integer):
    p = hand_made_predictor(tmp_path, _zero_net(PASS), integer)
    video = panning_video(8, 32, 48)
    hint = pack_hint([], pack_base_hint(AS_DECODED, pack_velocity(0, 3)))
    for steps in (1, 2):  # x0 = 0 at every step: the frames are the base predictor's exactly
        assert torch.equal(p.predict(video[:1], hint, 4, steps), p.base_predictor.predict(video[:1], hint[1:], 4, 1))


def _zero_net(config: RefineConfig = TINY) -> RefineNet:
    net = RefineNet(config)
    for q in net.parameters():
        torch.nn.init.zeros_(q)
    return net


@pytest.mark.parametrize("integer", [False, True])
def test_steering_picks_noises_towards_the_source(tmp_path, integer):
    """With x0 = x_t and two steps the frames are base + (cos(pi/4) x1 + sin(pi/4) z) / scale for the
    first noise x1 and the second step's noise z: the codebook entry steering picks points along
    (target - base) * scale - x1, so the steered frames are nearer the targets than the plain ones,
    and the hint names one entry per frame."""
    p = hand_made_predictor(tmp_path, _passthrough_net(), integer)
    video = panning_video(8, 32, 48)
    context = video[:1]
    base = p.base_predictor.predict(context, b"", 4, 2)
    targets = (base.to(torch.int16) + torch.where(torch.arange(48) % 8 < 4, 40, -40)[None, None, :, None]) \
        .clamp(0, 255).to(torch.uint8)[:2]  # two targets: the call's third frame is past the segment's end
    assert p.encoder_variants(context, b"", targets, 4, 1) == [pack_hint(None, b"")]  # one step: nothing to steer
    off, hint = p.encoder_variants(context, b"", targets, 4, 2)
    assert off == pack_hint(None, b"")
    steered, base_hint = unpack_hint(hint, 3)
    assert base_hint == b"" and len(steered) == 1 and len(steered[0]) == 3 and steered[0][2] == 0
    frames, plain = p.predict(context, hint, 4, 2), p.predict(context, b"", 4, 2)

    def err(f: torch.Tensor) -> float:
        return float((f[:2].float() - targets.float()).square().mean())
    assert err(frames) < err(plain)
    with pytest.raises(BitstreamError, match="steers more steps"):  # the stream must sample the steered steps
        p.predict(context, hint, 4, 1)
    off, one, two = p.encoder_variants(context, b"", targets, 4, 3)  # three steps: steer the first one or both
    first, both = unpack_hint(one, 3)[0], unpack_hint(two, 3)[0]
    assert len(first) == 1 and len(both) == 2 and first == both[:1]  # a step's pick depends on the steps before it
    assert err(p.predict(context, two, 4, 3)) < err(p.predict(context, b"", 4, 3))


def test_the_integer_model_follows_the_float_one(tmp_path):
    refiner = int_refine_file(tmp_path)
    video = panning_video(8, 32, 48)
    for steps in (1, 2):
        a = predictor_for(refiner, 3).predict(video[:1], b"", 5, steps).float()
        b = predictor_for(IntRefiner.load(tmp_path / "refine-int.pt"), 3).predict(video[:1], b"", 5, steps).float()
        assert (a - b).abs().mean() < 1.0 and (a - b).abs().max() <= 12


@pytest.mark.parametrize("config", [TINY, TWO_FRAMES], ids=["base-only", "two-decoded-frames"])
def test_stream_decodes_bit_exactly_and_the_simulator_agrees(tmp_path, lpips_metric, config):
    p = refine_predictor(tmp_path, config=config)
    video = panning_video(9, 32, 48)
    codec = AV1IntraCodec()
    settings = EncoderSettings(lpips_threshold=0.12, quality=10, gop=9, sampling_steps=2, seed=0, residual_levels=2)
    enc = encode_video([video], Fraction(25), codec, p, lpips_metric, settings)
    stream = unpack(enc.data)
    assert enc.data[4] == 8 and stream.header.predictor_model_id == 9 and stream.header.sampling_steps == 2
    assert stream.header.context_frames == p.context_frames
    assert stream.header.predictor_hash == p.content_hash[:len(stream.header.predictor_hash)]
    library = ModelLibrary(extra_dirs=(tmp_path,))  # the refine file alone: it carries its restoration model
    decoded = next(open_stream(enc.data, library).segments())
    assert torch.equal(decoded, enc.results[0].reconstruction)
    sim = SegmentSimulator(video, codec, p, lpips_metric, settings)
    assert sim.run(settings.quality, settings.lpips_threshold, settings.residual_levels).bytes == len(enc.data)
