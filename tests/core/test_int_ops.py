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


def wide_conv(seed: int = 0, stride: int = 1) -> IntConv:
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randint(-MAX_INT, MAX_INT + 1, (5, 4, 3, 3), generator=gen)
    bias = torch.randint(-2 ** 30, 2 ** 30, (5,), generator=gen)
    return IntConv(weight, bias, torch.tensor([0, 3, 9, 17, 30]), stride, WIDE_INT, wide=True)


@pytest.mark.parametrize("stride", [1, 2])
def test_a_wide_convolution_is_the_exact_integer_result(stride):
    conv = wide_conv(stride=stride)
    a = torch.randint(-WIDE_INT, WIDE_INT + 1, (2, 4, 9, 11), generator=torch.Generator().manual_seed(1))
    # the reference: int64 sums by unfolding (exact by construction)
    cols = F.unfold(a.double(), 3, padding=1, stride=stride).to(torch.int64)  # (B, I*9, L)
    acc = torch.einsum("oi,bil->bol", conv.weight.flatten(1), cols) + conv.bias[None, :, None]
    shift = conv.shift[None, :, None]
    expect = torch.div(acc + (1 << shift) // 2 * (shift > 0), 1 << shift, rounding_mode="floor")
    expect = expect.clamp(-WIDE_INT, WIDE_INT).reshape(2, 5, *F.conv2d(a.double(), conv.weight.double(),
                                                                         stride=stride, padding=1).shape[-2:])
    out = conv.as_float("cpu")(a.double())
    assert out.dtype == torch.float64 and torch.equal(out.to(torch.int64), expect)


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
