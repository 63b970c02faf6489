"""The diffusion predictor's UNet and DDIM sampler (core.unet, core.ddim) in integer arithmetic:
the same predicted frames on every machine (the arithmetic and why: core.int_ops).

The network is the float one quantised after training (training.unet_quantize). Every tensor holds
integers read as integer * scale, the scales fixed at quantisation time and folded into weights and
tables, so they never appear at run time:

- convolutions: core.int_ops.IntConv, wide (16-bit inputs as two exact float32 halves, 8-bit
  weights: 8-bit activations lose ~3 % of each layer's signal and ~15 % of v after 16 layers),
  per-output-channel power-of-two requantisation (in float32 where the layer allows:
  int_ops.WideCombine32); convolution outputs, block sums and SiLU outputs are tensors of 16-bit
  integers (float32, or float64 from a layer requantised in float64), exact either way; the group
  norms' sums and products run in float64 (< 2^52, exact); a SiLU output goes straight into the
  next convolution's halves through two stored tables (its 256s and its remainders);
- GroupNorm + affine + FiLM + SiLU (`IntNormSiLU`): exact group sums (float64 rows below 2^53,
  added in int64), the mean rounded to an integer, the variance, the exact integer square root,
  one per-channel (per time step, where FiLM) integer multiplier for normalisation and gain, the
  pre-activation in 2^-10 units (|x| <= 64), then SiLU from one stored table, in 2^-9 units;
- the time embedding MLP: evaluated at quantisation time for every time a supported sampler visits
  (t = k/n, n <= MAX_STEPS) and stored as FiLM tables, so no float runs at decode time;
- identity skips whose scales differ: an integer multiply and shift (`IntRescale`);
- the starting noise: a counter-based splitmix64 hash of (seed, index) (numpy uint64, wrapping by
  definition) picks one of 4096 stored Gaussian quantiles (2^-12 units);
- deterministic DDIM (eta 0) on the cosine schedule with uniform steps: every step is
  x' = cos(d) x - sin(d) v with d = pi / (2n), two stored fixed-point constants per step count.

Shapes: context (1,3K,H,W) and noisy (1,3F,H,W) integers -> v (1,3F,H,W) integers; H, W multiples
of 2^(levels-1) (the predictor pads).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import torch
import torch.nn.functional as F

from evc_archive.core.int_ops import (WIDE_INT, FloatConv, IntConv, exact_math, isqrt, noise_index, round_div,
                                      round_shift, round_shift_float_)
from evc_archive.core.settings import MAX_SAMPLING_STEPS

MAX_STEPS = MAX_SAMPLING_STEPS  # sampler step counts 1..MAX_STEPS have stored tables
SAMPLE_BITS = 12  # the sampler's state and the UNet's noisy input: integer / 2^12
NORM_BITS = 12  # a normalised value: integer / 2^12
GAIN_BITS = 12  # IntNormSiLU's per-channel gain: integer / 2^12
PRE_BITS = 10  # a pre-activation: integer / 2^10
PRE_LIMIT = 64 << PRE_BITS  # |pre-activation| <= 64
SILU_BITS = 9  # every SiLU output: integer / 2^9 (|silu| <= 64 in 16 bits)
STEP_BITS = 16  # DDIM's per-step constants: integer / 2^16
RESCALE_BITS = 14  # IntRescale's multiplier: integer / 2^14
NOISE_LEVELS = 4096  # stored Gaussian quantiles (12 bits of hash per sample)


def sampler_times() -> tuple[Fraction, ...]:
    """Every time t > 0 a uniform DDIM schedule of 1..MAX_STEPS steps evaluates the UNet at, sorted."""
    return tuple(sorted({Fraction(k, n) for n in range(1, MAX_STEPS + 1) for k in range(1, n + 1)}))


def exact_sum(rows: torch.Tensor) -> torch.Tensor:
    """float64 integers (B,G,R,W), |value| <= 2^32 -> (B,G,1) int64 sums over R and W. Each row's
    sum is below 2^53 for W < 2^20, so exact in any order; the row sums add up in int64."""
    return rows.sum(-1).to(torch.int64).sum(-1, keepdim=True)


@dataclass(frozen=True)
class IntNormSiLU:
    """GroupNorm(groups) with its affine (and FiLM, where gain/offset have one row per sampler
    time) then SiLU: x (B,C,H,W) float64 integers with |x| <= WIDE_INT -> float32 integers in 2^-9
    units. Per (sample, group): mean m = round(sum / n), d = x - m, var = round(sum d^2 / n) + eps,
    root = isqrt(var * 2^20) (sqrt(var) * 2^10), inv = round(2^42 / root) (2^12 / std * 2^20); per
    channel M = round(inv * gain / 2^20) (the normalisation and the gain together);
    pre = clamp(round((d * M + offset) / 2^(NORM_BITS + GAIN_BITS - PRE_BITS)), +-PRE_LIMIT) in
    2^-10 units; out = silu[pre + PRE_LIMIT]. Every product stays below 2^52: |d| / std <= sqrt(n)
    (one deviation cannot exceed all of them together)."""

    groups: int
    eps: torch.Tensor  # (groups,) int64: the float eps in each group's x^2 units
    gain: torch.Tensor  # (T,C) int64 (|gain| < 2^20), T = 1 without FiLM
    offset: torch.Tensor  # (T,C) int64

    def __call__(self, x: torch.Tensor, time_index: int, silu: torch.Tensor) -> torch.Tensor:
        """x (B,C,H,W) -> silu[index] (B,C,H,W) (`silu` the stored table on x's device)."""
        return silu.index_select(0, self.index(x, time_index).view(-1)).view(x.shape)

    def index(self, x: torch.Tensor, time_index: int) -> torch.Tensor:
        """x (B,C,H,W) integers (float32 or float64) -> the SiLU table index (B,C,H,W) int32."""
        x = x.double()  # its sums and products below need float64 (a no-op where it already is)
        b, c, h, w = x.shape
        per_group = c // self.groups
        rows = x.reshape(b, self.groups, -1, w)  # a group's rows
        count = torch.tensor(rows.shape[-2] * w, dtype=torch.int64, device=x.device)
        total = exact_sum(rows)  # (B,G,1): sum x; sum x^2 below, row by row (each < 2^52: exact in any order)
        squares = torch.einsum("bgrw,bgrw->bgr", rows, rows).to(torch.int64).sum(-1, keepdim=True)
        mean = round_div(total, count)
        # sum (x - m)^2 = sum x^2 - 2 m sum x + n m^2: the same integer, without forming x - m
        deviation = squares - 2 * mean * total + count * mean * mean
        var = round_div(deviation, count) + self.eps.to(x.device)[None, :, None]
        inv = round_div(torch.full_like(var, 1 << 42), isqrt(var << 20).clamp(min=1))  # (B,G,1)
        row = time_index if self.gain.shape[0] > 1 else 0
        multiplier = round_shift(inv.repeat_interleave(per_group, dim=1)[..., 0] * self.gain[row].to(x.device), 20)
        mean = mean.repeat_interleave(per_group, dim=1)[..., 0]  # (B,C)
        offset = self.offset[row].to(x.device)[None]  # (1,C)
        unit_bits = NORM_BITS + GAIN_BITS - PRE_BITS
        # the table index floor((d * M + offset) / 2^14 + 1/2) + PRE_LIMIT as one fused step over x:
        # (x * M + (offset - m * M) + 2^13) * 2^-14 + PRE_LIMIT is the same number; where every term
        # is below 2^51 each step is exact, so the sum is, and the clamp to [0, 2 PRE_LIMIT] before
        # truncation equals the floor then the clamp. Otherwise (a near-constant group with a huge
        # multiplier) the deviations themselves are formed, whose products the docstring bounds.
        shifted = offset - mean * multiplier + (1 << (unit_bits - 1))
        exact = multiplier.abs().max() * (WIDE_INT + 1) < 2**51 and shifted.abs().max() < 2**51
        unit = 2.0 ** -unit_bits
        if exact:
            base, values = (shifted.to(x.dtype) * unit + PRE_LIMIT)[..., None, None], x
        else:
            base = ((offset.to(x.dtype) + 2.0 ** (unit_bits - 1)) * unit + PRE_LIMIT)[..., None, None]
            values = rows - mean[:, ::per_group, None, None].to(x.dtype)
        index = torch.addcmul(base, values.reshape(b, c, h, w), (multiplier.to(x.dtype) * unit)[..., None, None])
        return index.clamp_(0, 2 * PRE_LIMIT).to(torch.int32)

    def to_file(self) -> dict:
        return {"groups": self.groups, "eps": self.eps, "gain": self.gain, "offset": self.offset}

    @classmethod
    def from_file(cls, d: dict) -> "IntNormSiLU":
        return cls(int(d["groups"]), d["eps"].to(torch.int64), d["gain"].to(torch.int64), d["offset"].to(torch.int64))


@dataclass(frozen=True)
class IntRescale:
    """An identity skip between two scales: x -> round(x * multiplier / 2^RESCALE_BITS), |x| <= 2^15."""

    multiplier: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return round_shift_float_(x.double() * self.multiplier, RESCALE_BITS)

    def to_file(self) -> dict:
        return {"multiplier": self.multiplier}


@dataclass(frozen=True)
class IntResBlock:
    """norm1-SiLU-conv1, norm2(FiLM)-SiLU-conv2, plus the skip: clamp(skip(x) + h) to 16 bits."""

    norm1: IntNormSiLU
    conv1: IntConv
    norm2: IntNormSiLU
    conv2: IntConv
    skip: IntConv | IntRescale

    def layers(self) -> list:
        return [self.norm1, self.conv1, self.norm2, self.conv2, self.skip]

    def to_file(self) -> dict:
        return {"norm1": self.norm1.to_file(), "conv1": self.conv1.to_file(), "norm2": self.norm2.to_file(),
                "conv2": self.conv2.to_file(), "skip": self.skip.to_file()}

    @classmethod
    def from_file(cls, d: dict) -> "IntResBlock":
        skip = d["skip"]
        return cls(IntNormSiLU.from_file(d["norm1"]), IntConv.from_file(d["conv1"]), IntNormSiLU.from_file(d["norm2"]),
                   IntConv.from_file(d["conv2"]),
                   IntRescale(int(skip["multiplier"])) if "multiplier" in skip else IntConv.from_file(skip))


@dataclass(frozen=True)
class IntUNetModel:
    """The quantised ConditionalUNet plus its tables. step_gain/step_v (MAX_STEPS,): per step count
    n, cos(pi/2n) * 2^16 and -sin(pi/2n) * v_scale * 2^(12+16) (v's integers to the sample's).
    noise (NOISE_LEVELS,): Gaussian quantiles * 2^12. silu (2 * PRE_LIMIT + 1,): SiLU of
    (i - PRE_LIMIT) / 2^10, times 2^9."""

    stem: IntConv
    down: tuple[IntResBlock, ...]
    downsample: tuple[IntConv, ...]
    mid: IntResBlock
    up: tuple[IntResBlock, ...]
    out_norm: IntNormSiLU
    out: IntConv
    step_gain: torch.Tensor
    step_v: torch.Tensor
    noise: torch.Tensor
    silu: torch.Tensor

    def blocks(self) -> list[IntResBlock]:
        return [*self.down, self.mid, *self.up]

    def convs(self) -> list[IntConv]:
        return [self.stem, *self.downsample, self.out,
                *(c for b in self.blocks() for c in (b.conv1, b.conv2, b.skip) if isinstance(c, IntConv))]

    def parameter_count(self) -> int:
        return sum(c.weight.numel() + c.bias.numel() for c in self.convs())

    def to_file(self) -> dict:
        return {"stem": self.stem.to_file(), "down": [b.to_file() for b in self.down],
                "downsample": [c.to_file() for c in self.downsample], "mid": self.mid.to_file(),
                "up": [b.to_file() for b in self.up], "out_norm": self.out_norm.to_file(), "out": self.out.to_file(),
                "step_gain": self.step_gain, "step_v": self.step_v, "noise": self.noise,
                "silu": self.silu.to(torch.int16)}

    @classmethod
    def from_file(cls, d: dict) -> "IntUNetModel":
        return cls(IntConv.from_file(d["stem"]), tuple(IntResBlock.from_file(b) for b in d["down"]),
                   tuple(IntConv.from_file(c) for c in d["downsample"]), IntResBlock.from_file(d["mid"]),
                   tuple(IntResBlock.from_file(b) for b in d["up"]), IntNormSiLU.from_file(d["out_norm"]),
                   IntConv.from_file(d["out"]), d["step_gain"].to(torch.int64), d["step_v"].to(torch.int64),
                   d["noise"].to(torch.int64), d["silu"].to(torch.int64))


class IntUNet:
    """An IntUNetModel's convolutions on one device: (context, noisy, time index) -> v."""

    def __init__(self, model: IntUNetModel, device: str = "cpu"):
        self.model, self.device = model, device
        if not all(c.wide for c in model.convs()):  # training.unet_quantize makes every one wide
            raise ValueError("integer UNet model file: every convolution must be wide (16-bit inputs)")
        self._convs: dict[int, FloatConv] = {}
        silu = model.silu.to(device, torch.float32)  # |silu| <= 2^15: exact; convolutions take float32
        self._silu_hi = torch.floor(silu / 256)  # a SiLU output's halves (int_ops.FloatConv.__call__'s split)
        self._silu_lo = silu - 256 * self._silu_hi

    def _float(self, conv: IntConv) -> FloatConv:
        key = id(conv)
        if key not in self._convs:
            self._convs[key] = conv.as_float(self.device)
        return self._convs[key]

    def _run(self, conv: IntConv, x: torch.Tensor) -> torch.Tensor:
        """integers (B,I,H,W) -> (B,O,H',W') through one wide integer convolution."""
        return self._float(conv)(x)

    def _norm_conv(self, norm: IntNormSiLU, conv: IntConv, x: torch.Tensor, ti: int) -> torch.Tensor:
        """conv(silu(norm(x))), the SiLU's output gathered straight into the convolution's halves."""
        carrier = self._float(conv)
        index = norm.index(x, ti).view(-1)
        n = x.shape[0]
        halves = torch.empty((2 * n, *x.shape[1:]), dtype=torch.float32, device=x.device)
        torch.index_select(self._silu_hi, 0, index, out=halves[:n].view(-1))
        torch.index_select(self._silu_lo, 0, index, out=halves[n:].view(-1))
        return carrier.from_halves(halves)

    def _block(self, block: IntResBlock, x: torch.Tensor, ti: int) -> torch.Tensor:
        h = self._norm_conv(block.norm1, block.conv1, x, ti)
        h = self._norm_conv(block.norm2, block.conv2, h, ti)
        skip = self._run(block.skip, x) if isinstance(block.skip, IntConv) else block.skip(x)
        return (skip + h).clamp_(-WIDE_INT, WIDE_INT)

    def __call__(self, context: torch.Tensor, noisy: torch.Tensor, time_index: int) -> torch.Tensor:
        """context (B,3K,H,W), noisy (B,3F,H,W) int64 in [-WIDE_INT, WIDE_INT] -> v (B,3F,H,W) int64."""
        m = self.model
        with exact_math():
            h = self._run(m.stem, torch.cat([context, noisy], dim=1).to(torch.float32))  # 16-bit: exact
            skips = []
            for i, block in enumerate(m.down):
                h = self._block(block, h, time_index)
                skips.append(h)
                if i < len(m.downsample):
                    h = self._run(m.downsample[i], h)
            h = self._block(m.mid, h, time_index)
            for block in m.up:
                skip = skips.pop()
                if h.shape[-2:] != skip.shape[-2:]:
                    h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
                h = self._block(block, torch.cat([h, skip], dim=1), time_index)
            return self._norm_conv(m.out_norm, m.out, h, time_index).to(torch.int64)


def hashed_noise(seed: int, count: int, table: torch.Tensor) -> torch.Tensor:
    """count samples of the stored Gaussian quantiles `table` (NOISE_LEVELS,) at
    int_ops.noise_index(seed, count) -> (count,) int64. The same on every machine."""
    return table[noise_index(seed, count)]
