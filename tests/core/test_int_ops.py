"""Integer building blocks: exact square roots, our rounding, and wide convolutions that give the
exact integer result whatever kernel computes their two halves."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from evc_archive.core.int_ops import MAX_INT, WIDE_BIAS_BOUND, WIDE_INT, IntConv, isqrt, round_div, round_shift


def test_isqrt_is_exact_next_to_every_square():
    roots = torch.tensor([0, 1, 2, 3, 1000, 4095, 2 ** 20 + 7, 2 ** 26 - 1, 94906265], dtype=torch.int64)
    m = torch.cat([roots * roots, (roots * roots - 1).clamp(min=0), roots * roots + 1, (roots + 1) * (roots + 1) - 1])
    assert isqrt(m).tolist() == [math.isqrt(v) for v in m.tolist()]
    small = m[m < 2**52]
    assert isqrt(small.double()).tolist() == [float(math.isqrt(v)) for v in small.tolist()]


@pytest.mark.parametrize("error", [-1.0, 1.0])
def test_isqrt_corrects_a_square_root_off_by_one(monkeypatch, error):
    """A device whose sqrt is not correctly rounded: the integer check corrects it."""
    m = torch.tensor([0, 3, 4, 99, 100, 2**40 + 5, 2**50 - 1], dtype=torch.int64)
    true_sqrt = torch.sqrt
    monkeypatch.setattr(torch, "sqrt", lambda x: (true_sqrt(x) + error).clamp(min=0))
    expected = [math.isqrt(v) for v in m.tolist()]
    assert isqrt(m).tolist() == expected and isqrt(m.double()).tolist() == [float(v) for v in expected]


def test_rounding_is_half_up_for_both_signs():
    x = torch.tensor([-5, -3, -1, 1, 3, 5], dtype=torch.int64)
    assert round_shift(x, 1).tolist() == [-2, -1, 0, 1, 2, 3]  # -2.5 -> -2, 2.5 -> 3
    assert round_div(x, torch.tensor(2)).tolist() == [-2, -1, 0, 1, 2, 3]
    assert round_div(torch.tensor([7, -7]), torch.tensor(3)).tolist() == [2, -2]


def wide_conv(seed: int = 0, stride: int = 1, shift: tuple[int, ...] = (0, 3, 9, 17, 30),
              bias_bits: int = 30) -> IntConv:
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randint(-MAX_INT, MAX_INT + 1, (len(shift), 4, 3, 3), generator=gen)
    bias = torch.randint(-2 ** bias_bits, 2 ** bias_bits, (len(shift),), generator=gen)
    return IntConv(weight, bias, torch.tensor(shift), stride, WIDE_INT, wide=True)


def exact_result(conv: IntConv, a: torch.Tensor) -> torch.Tensor:
    """The integer convolution by int64 sums over unfolded inputs (exact by construction)."""
    stride, out = conv.stride, conv.weight.shape[0]
    cols = F.unfold(a.double(), 3, padding=1, stride=stride).to(torch.int64)  # (B, I*9, L)
    acc = torch.einsum("oi,bil->bol", conv.weight.flatten(1), cols) + conv.bias[None, :, None]
    shift = conv.shift[None, :, None]
    expect = torch.div(acc + (1 << shift) // 2 * (shift > 0), 1 << shift, rounding_mode="floor")
    size = F.conv2d(a.double(), conv.weight.double(), stride=stride, padding=1).shape[-2:]
    return expect.clamp(-WIDE_INT, WIDE_INT).reshape(a.shape[0], out, *size)


@pytest.mark.parametrize("stride", [1, 2])
def test_a_wide_convolution_is_the_exact_integer_result(stride):
    conv = wide_conv(stride=stride)
    a = torch.randint(-WIDE_INT, WIDE_INT + 1, (2, 4, 9, 11), generator=torch.Generator().manual_seed(1))
    out = conv.as_float("cpu")(a.double())
    assert conv.as_float("cpu").combine32 is None  # mixed shifts, large biases: requantised in float64
    assert out.dtype == torch.float64 and torch.equal(out.to(torch.int64), exact_result(conv, a))


@pytest.mark.parametrize("shift", [(1, 2, 5, 7, 8), (8, 9, 13, 17, 22)], ids=["shifts-to-8", "shifts-from-8"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_wide_convolution_requantised_in_float32_is_the_exact_integer_result(shift, dtype):
    """Every sum near its bounds: inputs at +-WIDE_INT as well as random, weights at +-MAX_INT."""
    conv = wide_conv(5, shift=shift, bias_bits=21)
    gen = torch.Generator().manual_seed(2)
    a = torch.randint(-WIDE_INT, WIDE_INT + 1, (3, 4, 8, 9), generator=gen)
    a[1] = WIDE_INT * torch.sign(conv.weight[0].sum(dim=(1, 2)))[:, None, None]  # channel 0's largest sum
    a[2] = -a[1]
    carrier = conv.as_float("cpu")
    assert carrier.combine32 is not None
    out = carrier(a.to(dtype))
    assert out.dtype == torch.float32 and torch.equal(out.to(torch.int64), exact_result(conv, a))
    assert out.abs().max() == WIDE_INT  # the clamp is reached


def test_float32_requantisation_is_exact_where_the_sums_fill_24_bits():
    """High halves' sums near 2^22 (float32's unit there is 1/2), outputs not clamped (shifts 15,
    16): adding the low half's 1/256ths to them before the floor would be off by one somewhere."""
    weight = torch.full((2, 16, 3, 3), 222, dtype=torch.int64)  # sum |w| * 255 just below 2^23
    conv = IntConv(weight, torch.tensor([1234, -987]), torch.tensor([15, 16]), 1, WIDE_INT, wide=True)
    lo = torch.randint(0, 256, (2, 16, 64, 64), generator=torch.Generator().manual_seed(3))
    a = 127 * 256 + lo  # every input near WIDE_INT
    carrier = conv.as_float("cpu")
    assert carrier.combine32 is not None and carrier.combine32.hi_scale is None
    out = carrier(a.float())
    assert torch.equal(out.to(torch.int64), exact_result(conv, a)) and out.abs().max() < WIDE_INT  # not clamped


def test_wide_bounds_are_checked():
    conv = wide_conv()
    with pytest.raises(ValueError, match="exact range"):
        IntConv(conv.weight * 2, conv.bias, conv.shift, wide=True, limit=WIDE_INT)  # weights above MAX_INT
    with pytest.raises(ValueError, match="exact range"):
        IntConv(conv.weight, conv.bias + WIDE_BIAS_BOUND, conv.shift, wide=True, limit=WIDE_INT)
    with pytest.raises(ValueError, match="limit"):
        IntConv(conv.weight, conv.bias, conv.shift, wide=True, limit=WIDE_INT + 1)
    assert IntConv.from_file(conv.to_file()).wide


def test_a_wide_convolution_does_not_depend_on_the_kernel(monkeypatch):
    conv = wide_conv(3).as_float("cpu")
    a = torch.randint(-WIDE_INT, WIDE_INT + 1, (1, 4, 12, 10), generator=torch.Generator().manual_seed(4)).double()
    exact = conv(a)
    real = F.conv2d
    monkeypatch.setattr(F, "conv2d", lambda x, w, *args, **kw: (lambda out: out + 0.01 if out.dtype == torch.float32
                                                               else out)(real(x, w, *args, **kw)))
    assert torch.equal(conv(a), exact)
