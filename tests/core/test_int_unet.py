"""The integer UNet and sampler pieces: its v-prediction follows the float UNet it is quantised
from, its noise is a fixed function of (seed, index), and its tables mean what they say."""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction

import torch

import pytest

from evc_archive.core.int_unet import (MAX_STEPS, PRE_LIMIT, SAMPLE_BITS, IntNormSiLU, IntUNet, hashed_noise,
                                      sampler_times)
from evc_archive.training.unet_quantize import noise_quantiles, quantize, silu_table, v_relative_error
from tests.conftest import TINY_DIFFUSION


def calibration_video(n: int = 12, size: int = 16, seed: int = 0) -> torch.Tensor:
    """(n, K+F, 3, size, size) in [0,1]: smooth random sequences with a small drift."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.interpolate(torch.rand(n, 3, size // 4, size // 4, generator=gen), size=(size, size),
                                           mode="bilinear", align_corners=False)
    length = TINY_DIFFUSION.context_frames + TINY_DIFFUSION.frames_per_call
    return torch.stack([base.roll(t, dims=-1) for t in range(length)], dim=1)


def test_integer_v_follows_the_float_unet(tiny_predictor):
    model = quantize(tiny_predictor.unet, TINY_DIFFUSION, calibration_video())
    k, f = TINY_DIFFUSION.context_frames, TINY_DIFFUSION.frames_per_call
    v = IntUNet(model)(torch.zeros(1, 3 * k, 16, 16, dtype=torch.int64), torch.zeros(1, 3 * f, 16, 16, dtype=torch.int64), 0)
    assert v.dtype == torch.int64 and v.shape == (1, 3 * f, 16, 16)
    assert v_relative_error(tiny_predictor.unet, model, TINY_DIFFUSION, calibration_video(seed=1), seed=2) < 0.05
    narrow = replace(model, out=replace(model.out, wide=False, limit=255, bias=model.out.bias.clamp(-1, 1)))
    with pytest.raises(ValueError, match="wide"):  # SiLU outputs go into a convolution's 16-bit halves
        IntUNet(narrow)


def test_hashed_noise_is_a_fixed_gaussian_stream():
    table = noise_quantiles()
    assert hashed_noise(12345, 6, table).tolist() == [608, -970, 1178, -2539, 6054, -5238]  # frozen: streams depend on it
    assert hashed_noise(0, 3, table).tolist() == [4884, 686, 945]
    x = hashed_noise(7, 200_000, table).double() / 2 ** SAMPLE_BITS
    assert abs(float(x.mean())) < 0.01 and abs(float(x.std()) - 1) < 0.01
    assert not torch.equal(hashed_noise(7, 8, table), hashed_noise(8, 8, table))


def test_tables():
    times = sampler_times()
    assert times[-1] == 1 and Fraction(1, MAX_STEPS) in times and Fraction(3, 4) in times and len(set(times)) == len(times)
    silu = silu_table()
    mid = (len(silu) - 1) // 2
    assert silu[mid] == 0 and silu[mid + 1024] == round(1 / (1 + math.exp(-1)) * 512)  # silu(1) in 2^-9 units
    assert int(silu[-1]) == 2 ** 15 - 1  # silu(64) * 512 = 2^15, clamped to 16 bits


def norm_silu_reference(norm: IntNormSiLU, x: torch.Tensor, silu: torch.Tensor) -> torch.Tensor:
    """IntNormSiLU's docstring in Python integers: x (1,C,H,W) -> (1,C,H,W) table values."""
    c = x.shape[1]
    per_group, out = c // norm.groups, torch.empty(x.shape, dtype=silu.dtype)
    for g in range(norm.groups):
        values = [int(v) for v in x[0, g * per_group:(g + 1) * per_group].flatten()]
        n = len(values)
        mean = (2 * sum(values) + n) // (2 * n)
        var = (2 * sum((v - mean) ** 2 for v in values) + n) // (2 * n) + int(norm.eps[g])
        root = max(math.isqrt(var << 20), 1)
        inv = (2 * (1 << 42) + root) // (2 * root)
        for ch in range(g * per_group, (g + 1) * per_group):
            m = (inv * int(norm.gain[0, ch]) + (1 << 19)) >> 20
            for i, v in enumerate(x[0, ch].flatten().tolist()):
                pre = ((int(v) - mean) * m + int(norm.offset[0, ch]) + (1 << 13)) >> 14
                out[0, ch].view(-1)[i] = silu[min(max(pre + PRE_LIMIT, 0), 2 * PRE_LIMIT)]
    return out


@pytest.mark.parametrize("case", ["spread", "near-constant"])
def test_norm_silu_is_its_integer_definition(case):
    """Both of IntNormSiLU's routes (the fused one over x, and over x - mean where a near-constant
    group's multiplier is too large for it) give the docstring's integers."""
    gen = torch.Generator().manual_seed(3)
    silu = silu_table().to(torch.float32)
    if case == "spread":
        x = torch.randint(-30000, 30000, (1, 4, 3, 5), generator=gen)
        norm = IntNormSiLU(2, torch.tensor([5, 0]), torch.randint(-4000, 4000, (1, 4), generator=gen),
                           torch.randint(-10**6, 10**6, (1, 4), generator=gen))
    else:  # group 0 constant but one value, eps 0: var rounds to 0 and the multiplier is ~2^40
        x = torch.full((1, 4, 3, 5), 20000)
        x[0, 0, 0, 0] = 20001
        norm = IntNormSiLU(2, torch.tensor([0, 0]), torch.full((1, 4), 1 << 19), torch.zeros(1, 4, dtype=torch.int64))
    got = norm(x.to(torch.float64), 0, silu)
    assert torch.equal(got, norm_silu_reference(norm, x, silu))
