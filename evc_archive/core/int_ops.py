"""Integer building blocks of the bit-exact models (core.int_restore, core.int_unet): the same bits
on every machine, CPU or CUDA, whatever kernel runs them.

- Convolutions sum integer products carried in float32 tensors, so every backend's fast kernel runs
  them, and the result cannot depend on the kernel: weights and inputs are at most MAX_INT in
  magnitude (exact in float32, TF32, bfloat16 and float16 alike) and for every output channel
  sum(|w|) * MAX_INT + |bias| <= ACC_BOUND = 2^23, so every partial sum a kernel may form, in any
  order, with or without FMA or reduced-precision inputs, is an integer below 2^24 and exact.
  Transform-based kernels (Winograd, FFT) are the one way to a different result: a convolution whose
  output is not all integers is recomputed in float64 and rounded, which is exact for any such
  kernel (its error stays far below 0.5 at these magnitudes). `exact_math` also turns cuDNN and
  NNPACK off and keeps float32 matmul precision at "highest" while integer layers run. Everything
  after the sum is exact in float32: the bias add, the scale 2^-shift (shift <= MAX_SHIFT), + 0.5,
  floor and clamp.
- Wide convolutions (`IntConv.wide`, for models whose activations need more than 8 bits) take
  16-bit inputs (|a| <= WIDE_INT) with the same 8-bit weight bounds: a = 256 * hi + lo with
  lo in [0, 255] and |hi| <= 128, both halves go through one float32 convolution (stacked on the
  batch axis, each exact as above), and round_half_up((256 * acc_hi + acc_lo + bias) / 2^shift)
  is formed in float32 where the layer allows (`wide_combine32`: every shift in 1..8 or every
  shift >= 8, and |bias| + 2^(shift-1) < 2^23): with L = acc_lo + bias + 2^(shift-1) (below 2^24,
  exact), the result is 2^(8-shift) acc_hi + floor(L / 2^shift) for shift <= 8, and
  floor((acc_hi + floor(L / 256)) / 2^(shift-8)) for shift >= 8 (256 acc_hi + L = 256 (acc_hi + q)
  + r with 0 <= r < 256 and q = floor(L / 256), and r adds less than one unit of 2^(shift-8)); every
  term is an integer below 2^24 or a power-of-two multiple of one, and where a sum passes 2^24 the
  clamp to WIDE_INT gives the same value as the exact one. Otherwise the sum is formed, scaled and
  rounded in float64, where every value is an integer below 2^52. Both give the same integers; the
  output is float32 or float64 accordingly.
- Everything else (group norms, lookup tables, rescales, sampler arithmetic) runs on int64 tensors:
  integer addition, multiplication and floor division have one result on every device.
- Seeded noise is ours too: `noise_index` hashes (key, element) with splitmix64 into the index of a
  stored Gaussian quantile, in numpy uint64 arithmetic (no generator whose algorithm may change).
- Rounding is ours: round half up (`round_shift`, `round_div`); `isqrt` is the exact integer square
  root.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

MAX_INT = 255  # |weight|, |conv input| <= MAX_INT: exact in every float format a kernel may use
ACC_BOUND = 1 << 23  # per output channel: sum |w| * MAX_INT + |bias| <= ACC_BOUND
MAX_SHIFT = 22  # (acc + bias) / 2^shift + 0.5 stays exact in float32
MAX_LIMIT = 1 << 23  # the widest clamp a convolution's output may have (exact in float32)
WIDE_INT = (1 << 15) - 1  # a wide convolution's |input| and output limit
WIDE_BIAS_BOUND = 1 << 40  # a wide convolution's |bias| (its sum stays below 2^52 in float64)
WIDE_MAX_SHIFT = 40


def within_bounds(weight: torch.Tensor, bias: torch.Tensor, wide: bool = False) -> bool:
    """One output channel's integer weight (I,kh,kw) and bias () keep every sum exact (`wide`:
    the bias is added in float64 after the two halves' sums)."""
    bias_ok = bias.abs() <= WIDE_BIAS_BOUND if wide else weight.abs().sum() * MAX_INT + bias.abs() <= ACC_BOUND
    return bool(weight.abs().max() <= MAX_INT and weight.abs().sum() * MAX_INT <= ACC_BOUND and bias_ok)


def noise_index(key: int, count: int) -> torch.Tensor:
    """(count,) int64 indices into a table of 4096 stored quantiles: the top 12 bits of
    splitmix64((key mod 2^32) * 2^32 + index). The same on every machine."""
    with np.errstate(over="ignore"):
        z = np.arange(count, dtype=np.uint64) + np.uint64((key & 0xFFFFFFFF) << 32) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return torch.from_numpy((z >> np.uint64(52)).astype(np.int64))


def round_shift(x: torch.Tensor, bits: int) -> torch.Tensor:
    """int64 x / 2^bits, rounded half up."""
    return (x + (1 << (bits - 1))) >> bits if bits > 0 else x


def round_shift_float_(x: torch.Tensor, bits: int) -> torch.Tensor:
    """float64 integers x (|x| < 2^52) / 2^bits, rounded half up, in place (x as it is where bits
    is 0): every step is exact, so it equals round_shift on int64."""
    return x.add_(2.0 ** (bits - 1)).mul_(2.0 ** -bits).floor_() if bits > 0 else x


def round_div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """int64 a / b (b > 0), rounded half up."""
    return torch.div(2 * a + b, 2 * b, rounding_mode="floor")


def isqrt(m: torch.Tensor, scratch: torch.Tensor | None = None) -> torch.Tensor:
    """floor(sqrt(m)) of integers m: int64 in [0, 2^53), or float64 in [0, 2^52) (the same dtype
    back). float64's correctly rounded root, checked with exact integer arithmetic (r is the root
    where 0 <= m - r^2 <= 2r) and corrected by one where a device's sqrt is not, so the result does
    not depend on the device's sqrt. `scratch`: a tensor of m's shape and dtype it may overwrite
    (saves allocating one)."""
    r = torch.sqrt(m.double()).floor_()
    if m.dtype != torch.float64:
        r = r.to(m.dtype)
    gap = torch.addcmul(m, r, r, value=-1, out=scratch)  # m - r^2
    if gap.sub_(r).abs_().sub_(r).max() > 0:  # |m - r^2 - r| > r somewhere: a sqrt off by one
        r = r - (r * r > m).to(r.dtype)
        r = r + ((r + 1) * (r + 1) <= m).to(r.dtype)
    return r


@dataclass(frozen=True)
class IntConv:
    """A convolution, weight (O,I,k,k) and bias (O,) integers, shift (O,) >= 0, padding k // 2:
    out = clamp(round_half_up((conv(a, weight, stride) + bias) / 2^shift), -limit, limit).
    Its inputs must be integers of magnitude <= MAX_INT (WIDE_INT where `wide`, in float64)."""

    weight: torch.Tensor
    bias: torch.Tensor
    shift: torch.Tensor
    stride: int = 1
    limit: int = MAX_INT
    wide: bool = False

    def __post_init__(self) -> None:
        if (self.shift < 0).any() or (self.shift > (WIDE_MAX_SHIFT if self.wide else MAX_SHIFT)).any():
            raise ValueError("integer convolution: shift out of range")
        if not 0 < self.limit <= (WIDE_INT if self.wide else MAX_LIMIT):
            raise ValueError("integer convolution: output limit out of range")
        for weight, bias in zip(self.weight, self.bias):
            if not within_bounds(weight, bias, self.wide):
                raise ValueError("integer convolution may leave the exact range of float32")

    def as_float(self, device: str) -> "FloatConv":
        dtype = torch.float64 if self.wide else torch.float32  # the sum after the convolution
        return FloatConv(self.weight.to(device, torch.float32), self.bias.to(device, dtype)[:, None, None],
                         torch.exp2(-self.shift.to(torch.float64)).to(device, dtype)[:, None, None],
                         self.weight.to(device, torch.float64), self.stride, self.weight.shape[-1] // 2, self.limit,
                         self.wide, self.wide_combine32(device))

    def wide_combine32(self, device: str) -> "WideCombine32 | None":
        """The float32 form of a wide convolution's requantisation where this layer's shifts and
        biases allow it (module docstring), else None."""
        s = self.shift
        if not self.wide or (s < 1).any() or not ((s <= 8).all() or (s >= 8).all()):
            return None
        offset = self.bias + (1 << (s - 1))
        if offset.abs().max() >= 1 << 23:
            return None
        low_shift = bool((s <= 8).all())
        scale = torch.exp2(-s.double()) if low_shift else torch.exp2(-(s - 8).double())
        as_plane = {"device": device, "dtype": torch.float32}
        return WideCombine32(offset.to(**as_plane)[:, None, None], scale.to(**as_plane)[:, None, None],
                             torch.exp2(8 - s.double()).to(**as_plane)[:, None, None] if low_shift else None)

    def to_file(self) -> dict:
        return {"weight": self.weight.to(torch.int16), "bias": self.bias.to(torch.int64 if self.wide else torch.int32),
                "shift": self.shift.to(torch.uint8), "stride": self.stride, "limit": self.limit, "wide": self.wide}

    @classmethod
    def from_file(cls, d: dict) -> "IntConv":
        return cls(d["weight"].to(torch.int64), d["bias"].to(torch.int64), d["shift"].to(torch.int64),
                   int(d.get("stride", 1)), int(d.get("limit", MAX_INT)), bool(d.get("wide", False)))


@dataclass(frozen=True)
class WideCombine32:
    """A wide convolution's requantisation in float32 (module docstring), per output channel
    (O,1,1): offset = bias + 2^(shift-1); scale = 2^-shift where every shift <= 8 (then hi_scale =
    2^(8-shift)), else 2^-(shift-8) (hi_scale None)."""

    offset: torch.Tensor
    scale: torch.Tensor
    hi_scale: torch.Tensor | None


@dataclass(frozen=True)
class FloatConv:
    """An IntConv's integers as float tensors (its carrier) on one device."""

    weight: torch.Tensor
    bias: torch.Tensor  # (O,1,1)
    scale: torch.Tensor  # (O,1,1) 2^-shift
    weight64: torch.Tensor
    stride: int
    padding: int
    limit: int
    wide: bool = False
    combine32: WideCombine32 | None = None

    def _sum(self, a: torch.Tensor) -> torch.Tensor:
        """a (B,I,H,W) float32 integers, |a| <= MAX_INT -> the exact sums (B,O,H',W') in float32."""
        acc = F.conv2d(a, self.weight, stride=self.stride, padding=self.padding)
        frac = torch.frac(acc)  # amin and amax, not aminmax: that copies a channels-last tensor first
        if frac.amin().item() != 0 or frac.amax().item() != 0:  # not all integers: a transform-based kernel; redo it exactly
            acc = F.conv2d(a.double(), self.weight64, stride=self.stride, padding=self.padding).round().float()
        return acc

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        """a (B,I,H,W) integers -> (B,O,H',W') integers in [-limit, limit]: float32 in and out, or,
        where `wide`, float32 or float64 in and float32 (combine32) or float64 out."""
        if not self.wide:
            return torch.floor((self._sum(a) + self.bias) * self.scale + 0.5).clamp_(-self.limit, self.limit)
        n = a.shape[0]
        # |a| <= 2^15: every step to the halves is exact in a's type and in float32
        halves = torch.empty((2 * n, *a.shape[1:]), dtype=torch.float32, device=a.device)
        torch.floor_(torch.mul(a, 1 / 256, out=halves[:n]))  # hi: |hi| <= 128
        torch.add(a, halves[:n], alpha=-256, out=halves[n:])  # lo in [0, 255]
        return self.from_halves(halves)

    def from_halves(self, halves: torch.Tensor) -> torch.Tensor:
        """A wide convolution of a = 256 hi + lo from halves (2B,I,H,W) float32: hi of the B
        samples, then lo -> (B,O,H',W') integers in [-limit, limit]."""
        n = halves.shape[0] // 2
        acc = self._sum(halves)
        c = self.combine32
        if c is not None:  # in place on the sums, every step exact (module docstring)
            hi, low = acc[:n], acc[n:].add_(c.offset)
            if c.hi_scale is not None:  # every shift <= 8
                return torch.floor_(low.mul_(c.scale)).add_(hi.mul_(c.hi_scale)).clamp_(-self.limit, self.limit)
            return torch.floor_(hi.add_(torch.floor_(low.mul_(1 / 256))).mul_(c.scale)).clamp_(-self.limit, self.limit)
        # (256 acc_hi + acc_lo + bias) * 2^-shift + 1/2 as two fused steps: each term is a power-of-two
        # multiple of an integer and every partial result has < 53 significant bits, so both are exact
        # float32 sums widen to float64 inside each step (exactly), without a converted copy
        total = torch.addcmul(self.bias * self.scale + 0.5, acc[:n], self.scale * 256)
        return torch.floor_(total.addcmul_(acc[n:], self.scale)).clamp_(-self.limit, self.limit)


@contextmanager
def exact_math():
    """Float32 matmuls at full precision and no cuDNN or NNPACK while integer layers run (restored after)."""
    precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        with torch.backends.cudnn.flags(enabled=False), torch.backends.nnpack.flags(enabled=False):
            yield
    finally:
        torch.set_float32_matmul_precision(precision)
