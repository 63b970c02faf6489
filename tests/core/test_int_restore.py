"""The integer restoration model: exact-range validation, file round trip, the same result as its
float parent up to rounding, and one result whatever kernel computes the sums."""

from __future__ import annotations

import pytest
import torch

from evc_archive.core.errors import ModelMismatchError
from evc_archive.core.int_restore import ACC_BOUND, MAX_INT, MAX_SHIFT, IntConv, IntRestorer, load_restoration_model, within_bounds
from evc_archive.core.restore import RestoreNet, Restorer
from evc_archive.training.restore_quantize import quantize
from tests.core.test_restore import TINY, random_restorer


def int_restorer(path, seed: int = 5) -> tuple[Restorer, IntRestorer]:
    """random_restorer's float model and its quantisation (calibrated on random frames), saved at path."""
    float_model = random_restorer(path.with_suffix(".float.pt"), seed)
    calibration = torch.randint(0, 256, (8, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    IntRestorer.save(path, quantize(float_model.net.cpu(), TINY, calibration))
    return float_model, IntRestorer.load(path)


def test_bounds_are_checked_per_output_channel():
    weight = torch.full((2, 3, 3), MAX_INT)
    assert within_bounds(weight, torch.tensor(0))
    assert not within_bounds(weight + 1, torch.tensor(0))  # a weight above MAX_INT
    wide = torch.full((ACC_BOUND // (MAX_INT * MAX_INT * 9) + 1, 3, 3), MAX_INT)
    assert not within_bounds(wide, torch.tensor(0))  # a sum that may pass 2^23
    ok = dict(weight=torch.ones(1, 2, 3, 3, dtype=torch.int64), bias=torch.zeros(1, dtype=torch.int64))
    IntConv(shift=torch.tensor([MAX_SHIFT]), **ok)
    with pytest.raises(ValueError, match="shift"):
        IntConv(shift=torch.tensor([MAX_SHIFT + 1]), **ok)
    with pytest.raises(ValueError, match="exact range"):
        IntConv(weight=wide[None].to(torch.int64), bias=torch.zeros(1, dtype=torch.int64), shift=torch.tensor([0]))


def test_fresh_model_stays_the_identity(tmp_path):
    calibration = torch.randint(0, 256, (4, 16, 16, 3), dtype=torch.uint8)
    IntRestorer.save(tmp_path / "id.pt", quantize(RestoreNet(TINY), TINY, calibration))
    frames = torch.randint(0, 256, (2, 33, 47, 3), dtype=torch.uint8)
    assert torch.equal(IntRestorer.load(tmp_path / "id.pt")(frames), frames)


def test_follows_the_float_model_and_round_trips(tmp_path):
    float_model, model = int_restorer(tmp_path / "r-int.pt")
    frames = torch.randint(0, 256, (2, 31, 45, 3), dtype=torch.uint8)
    out, ref = model(frames).to(torch.int16), float_model(frames).to(torch.int16)
    assert (out - ref).abs().float().mean() < 1.5 and not torch.equal(out, frames.to(torch.int16))
    again = load_restoration_model(tmp_path / "r-int.pt")
    assert isinstance(again, IntRestorer) and again.content_hash == model.content_hash
    assert torch.equal(again(frames), model(frames))
    assert isinstance(load_restoration_model(tmp_path / "r-int.float.pt"), Restorer)
    with pytest.raises(ModelMismatchError):  # a float model file is not an integer one
        IntRestorer.load(tmp_path / "r-int.float.pt")
    assert model.model.parameter_count() == sum(p.numel() for p in float_model.net.parameters())


def float64_kernel(conv):
    """Another summation order and no rounding at all."""
    return lambda a, w, *args, **kwargs: conv(a.double(), w.double(), *args, **kwargs).float()


def winograd_like_kernel(conv):
    """A transform-based kernel: float32 sums off by a fraction (caught, redone in float64)."""
    return lambda a, w, *args, **kwargs: (lambda out: out + 0.01 if out.dtype == torch.float32 else out)(
        conv(a, w, *args, **kwargs))


@pytest.mark.parametrize("kernel", [float64_kernel, winograd_like_kernel])
def test_the_result_does_not_depend_on_the_kernel(tmp_path, monkeypatch, kernel):
    _, model = int_restorer(tmp_path / "r-int.pt", seed=3)
    frames = torch.randint(0, 256, (1, 40, 36, 3), dtype=torch.uint8)
    exact = model(frames)
    monkeypatch.setattr(torch.nn.functional, "conv2d", kernel(torch.nn.functional.conv2d))
    assert torch.equal(model(frames), exact)
