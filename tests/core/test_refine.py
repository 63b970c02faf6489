"""The refine-diffusion model: shapes at any even size, the seeded Gaussian noise, the file (which
carries its base restoration model), and the sampler's times."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from evc_archive.core.errors import ModelMismatchError
from evc_archive.core.refine import (
    NOISE_TABLE,
    RefineConfig,
    RefineNet,
    Refiner,
    condition_frames,
    hashed_gaussian,
    noise_key,
    sample_times,
)

TINY = RefineConfig(channels=8, blocks=1)


def random_refiner(path, base_model: bytes = b"base", seed: int = 3, std: float = 0.05) -> Refiner:
    """A tiny refine model with random weights, saved and loaded."""
    torch.manual_seed(seed)
    net = RefineNet(TINY)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=std)
    Refiner.save(path, TINY, net, base_model)
    return Refiner.load(path)


def test_net_shapes_at_any_even_size():
    net = RefineNet(TINY)
    for h, w in ((8, 8), (32, 48), (18, 6)):
        v = net(torch.zeros(2, 3, h, w), torch.randn(2, 3, h, w), torch.tensor([1.0, 0.5]))
        assert v.shape == (2, 3, h, w)


def test_condition_is_the_base_frame_then_the_last_decoded_frames():
    base = torch.full((2, 4, 6, 3), 1, dtype=torch.uint8)
    context = torch.stack([torch.full((4, 6, 3), v, dtype=torch.uint8) for v in (7, 8, 9)])
    assert torch.equal(condition_frames(base, context, 0), base)
    two = condition_frames(base, context, 2)
    assert two.shape == (2, 4, 6, 9) and two[0, 0, 0].tolist() == [1, 1, 1, 8, 8, 8, 9, 9, 9]  # oldest first
    start = condition_frames(base, context[:1], 2)  # a segment's first call: the one frame repeated
    assert start[1, 3, 5].tolist() == [1, 1, 1, 7, 7, 7, 7, 7, 7]
    net = RefineNet(RefineConfig(channels=8, blocks=1, context_frames=2))
    assert net(torch.zeros(2, 9, 8, 10), torch.randn(2, 3, 8, 10), torch.tensor([1.0, 0.5])).shape == (2, 3, 8, 10)
    refiner = Refiner(RefineConfig(channels=8, blocks=1, context_frames=2), net, b"", b"")
    assert refiner.prepare(base, context).shape == (2, 9, 4, 6)
    with pytest.raises(ValueError, match="2 decoded frames"):
        refiner.prepare(base)


def test_hashed_gaussian_is_seeded_standard_normal():
    a = hashed_gaussian(noise_key(7, 0, 1, 5), 40000)
    assert torch.equal(a, hashed_gaussian(noise_key(7, 0, 1, 5), 40000))  # a pure function of its key
    assert abs(float(a.mean())) < 0.03 and abs(float(a.std()) - 1) < 0.03
    keys = {noise_key(7, f, s, e) for f in range(4) for s in range(3) for e in (None, 0, 1, 63)}
    assert len(keys) == 4 * 3 * 4  # frame, step and entry (or the seed's own noise) each name another noise
    assert NOISE_TABLE.shape == (4096,) and torch.equal(NOISE_TABLE, -NOISE_TABLE.flip(0))  # symmetric quantiles


def test_sample_times():
    assert sample_times(1) == [1.0, 0.0]
    assert sample_times(4) == [1.0, 0.75, 0.5, 0.25, 0.0]


def test_file_round_trip_carries_the_base_model(tmp_path):
    refiner = random_refiner(tmp_path / "r.pt", b"\x00restore model bytes\xff")
    again = Refiner.load(tmp_path / "r.pt")
    assert again.base_model == b"\x00restore model bytes\xff" and again.config == TINY
    assert again.content_hash == refiner.content_hash
    base, x = torch.rand(1, 3, 16, 16) * 2 - 1, torch.randn(1, 3, 16, 16)
    assert torch.equal(again.x0(base, x, Fraction(1, 2)), refiner.x0(base, x, Fraction(1, 2)))
    assert not torch.equal(refiner.x0(base, x, Fraction(1, 2)), refiner.x0(base, x, Fraction(1)))  # the time plane


def test_a_fresh_model_adds_nothing(tmp_path):
    """The last layer starts at zero: an untrained model's estimate is x0 = 0 at every time."""
    Refiner.save(tmp_path / "r.pt", TINY, RefineNet(TINY), b"")
    refiner = Refiner.load(tmp_path / "r.pt")
    base, x = torch.rand(1, 3, 16, 16) * 2 - 1, torch.randn(1, 3, 16, 16)
    for t in (Fraction(1), Fraction(1, 2)):
        assert torch.equal(refiner.x0(base, x, t), torch.zeros_like(x))
    frames = torch.randint(0, 256, (2, 15, 17, 3), dtype=torch.uint8)
    prepared = refiner.prepare(frames)
    assert prepared.shape == (2, 3, 16, 18)  # padded to even sides
    assert torch.equal(refiner.frames(prepared, torch.zeros_like(prepared), 15, 17), frames)
    with pytest.raises(ModelMismatchError):
        Refiner.from_bytes(b"not a model file")
