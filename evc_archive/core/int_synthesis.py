"""The hyperprior keyframe model's synthesis transform g_s in integer arithmetic (keyframe codec kind 3,
`hyperprior-int`): quantised latents -> the same pixels on every machine, CPU or CUDA.

g_s is four stride-2 transposed convolutions with an inverse GDN after the first three
(core.hyperprior). Here every activation is an integer on a per-layer fixed-point grid (2^-bits,
|a| <= ACT_LIMIT), weights on 2^-WEIGHT_BITS, GDN's gamma on 2^-GAMMA_BITS; rounding is ours (round
half up) and clamps are part of the definition.

- Every value is an integer held in a float64 tensor, below 2^52 in magnitude, so each add,
  multiply, power-of-two scale and floor below is exact and means what it would in int64.
- Transposed convolutions and GDN's channel sums are sums of integer products below 2^FLOAT_EXACT
  (checked per output channel when a layer is built, from the weights and the input limit), so any
  kernel, in any summation order, with or without FMA, gives the exact sum. Wide layers run as one
  matrix product per kernel tap and band of input rows, added into the output's stride-2 phase it
  lands on (BLAS speed, no column buffers); narrow ones as torch's transposed convolution, rounded
  once more (a no-op unless a transform-based kernel ran, whose error at these magnitudes stays far
  below 0.5). cuDNN and NNPACK are off while it runs (int_ops.exact_math).
- Bias add, round-half-up shifts (floor((x + 2^(s-1)) * 2^-s)), the inverse GDN's exact integer
  square root (int_ops.isqrt), products and clamps: one result on every device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from evc_archive.core.int_ops import exact_math, isqrt, round_shift_float_

ACT_LIMIT = (1 << 15) - 1  # |activation| of every layer, and of the latents fed in
WEIGHT_BITS = 16  # transposed-convolution weights on 2^-16 (|w| < 1 in the trained models)
GAMMA_BITS = 14  # GDN gamma on 2^-14 (even: the square root halves the exponent)
FLOAT_EXACT = 50  # every float64 sum stays below 2^50 (exact, with room for a transform kernel's error)
OUTPUT_BITS = 12  # the last layer's grid: pixels in [0, 1] as 0..4096
HEADROOM = 4  # calibration: a layer's grid leaves this factor above the largest activation seen
TAP_PRODUCT_MIN_OUTPUTS = 16  # deconvolutions with at least this many output channels run tap by tap
BAND_BYTES = 1 << 20  # a layer's float64 intermediates per band of rows, at most (they stay in cache)


def band_rows(n: int, channels: int, width: int) -> int:
    """Rows per band of an (n, channels, H, width) float64 tensor so that a band is BAND_BYTES at most."""
    return max(1, BAND_BYTES // (8 * n * channels * width))


def deconv_sums(a: torch.Tensor, weight: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """start + the exact sums of a 5x5 stride-2 transposed convolution (padding 2, output padding
    1): a (N,I,h,w), weight (I,O,5,5) and start (O,), float64 integers -> (N,O,2h,2w) float64
    integers."""
    n, i, h, w = a.shape
    o = weight.shape[1]
    if o < TAP_PRODUCT_MIN_OUTPUTS:
        return F.conv_transpose2d(a, weight, start, stride=2, padding=2, output_padding=1).round_()
    # input pixel (y, x) adds weight[:, :, ky, kx] to output (2y + ky - 2, 2x + kx - 2), which is
    # pixel (y + ky // 2 - 1, x + kx // 2 - 1) of the output's phase (ky % 2, kx % 2): one canvas
    # per phase, padded by one, takes each tap's matrix product in a shifted window of unit-stride
    # rows; input rows go in bands so that each product stays in cache. Matrix products of integers
    # below 2^50 are exact (no transform-based kernels there), so nothing is rounded after.
    canvases = start[:, None, None].expand(2, 2, n, o, h + 2, w + 2).clone()
    taps = weight.permute(2, 3, 1, 0)  # (5,5,O,I)
    rows = band_rows(n, o, w)
    for top in range(0, h, rows):
        bottom = min(h, top + rows)
        columns = a[:, :, top:bottom].reshape(n, i, -1)
        for ky in range(5):
            for kx in range(5):
                window = canvases[ky % 2, kx % 2, :, :, top + ky // 2:bottom + ky // 2, kx // 2:kx // 2 + w]
                window += torch.matmul(taps[ky, kx], columns).view(n, o, bottom - top, w)
    inner = canvases[:, :, :, :, 1:h + 1, 1:w + 1]  # (2,2,N,O,h,w): output (2y + py, 2x + px)
    return inner.permute(2, 3, 4, 0, 5, 1).reshape(n, o, 2 * h, 2 * w)


@dataclass(frozen=True)
class IntDeconv:
    """Stride-2 5x5 transposed convolution (padding 2, output padding 1), weight (I,O,k,k) on
    2^-WEIGHT_BITS, bias (O,) on 2^-(in_bits + WEIGHT_BITS): (N,I,h,w) integers on 2^-in_bits ->
    (N,O,2h,2w) integers on 2^-out_bits, clamped to +-ACT_LIMIT."""

    weight: torch.Tensor
    bias: torch.Tensor
    in_bits: int
    out_bits: int

    def __post_init__(self) -> None:
        if not 0 <= self.out_bits <= self.in_bits + WEIGHT_BITS:
            raise ValueError("integer deconvolution: output grid finer than its sums")
        per_output = self.weight.abs().sum(dim=(0, 2, 3)) * ACT_LIMIT + self.bias.abs()
        if per_output.max() >= 2**FLOAT_EXACT:
            raise ValueError("integer deconvolution may leave the exact range of float64")

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        """(N,I,h,w) float64 integers -> (N,O,2h,2w) float64 integers."""
        bits = self.in_bits + WEIGHT_BITS - self.out_bits
        start = self.bias.to(a.device, torch.float64) + (2.0 ** (bits - 1) if bits > 0 else 0.0)
        acc = deconv_sums(a, self.weight.to(a.device, torch.float64), start)  # acc + bias + 2^(bits-1)
        if bits > 0:
            acc.mul_(2.0 ** -bits).floor_()
        return acc.clamp_(-ACT_LIMIT, ACT_LIMIT)


@dataclass(frozen=True)
class IntInverseGDN:
    """Inverse GDN, out_c = a_c * sqrt(beta_c + sum_j gamma_cj a_j^2): gamma (C,C) on 2^-GAMMA_BITS,
    beta (C,) on 2^-(GAMMA_BITS + 2 bits); (N,C,H,W) integers on 2^-bits -> on 2^-out_bits."""

    gamma: torch.Tensor
    beta: torch.Tensor
    bits: int
    out_bits: int

    def __post_init__(self) -> None:
        if not 0 <= self.out_bits <= 2 * self.bits + GAMMA_BITS // 2:
            raise ValueError("integer inverse GDN: output grid finer than its products")
        if (self.gamma < 0).any() or (self.beta <= 0).any():
            raise ValueError("integer inverse GDN: gamma must be >= 0 and beta > 0")
        if (self.gamma.sum(dim=1) * ACT_LIMIT**2 + self.beta).max() >= 2**FLOAT_EXACT:
            raise ValueError("integer inverse GDN may leave the exact range of float64")

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        """(N,C,H,W) float64 integers -> the same shape, in bands of rows (every output pixel
        depends on its own input pixel only) that keep the intermediate tensors in cache."""
        n, c, h, w = a.shape
        gamma = self.gamma.to(a.device, torch.float64).expand(n, c, c)
        beta = self.beta.to(a.device, torch.float64)[:, None]
        shift = 2 * self.bits + GAMMA_BITS // 2 - self.out_bits
        half = torch.tensor(0.5, dtype=torch.float64, device=a.device)
        out = torch.empty_like(a)
        rows = band_rows(n, c, w)
        for top in range(0, h, rows):
            band = a[:, :, top:top + rows]
            square = (band * band).reshape(n, c, -1)  # |a| <= 2^15: exact
            norm = torch.baddbmm(beta, gamma, square).view(band.shape)  # beta + gamma @ a^2: exact below 2^50
            root = isqrt(norm, scratch=square.view(band.shape))  # on 2^-(GAMMA_BITS / 2 + bits)
            # floor(a * root / 2^shift + 1/2): a * root < 2^41, so every step is exact (at shift 0
            # the integer a * root itself, as round_shift gives)
            torch.addcmul(half, band, root, value=2.0 ** -shift, out=out[:, :, top:top + rows]).floor_()
        return out.clamp_(-ACT_LIMIT, ACT_LIMIT)


@dataclass(frozen=True)
class IntSynthesis:
    """g_s: latent symbols y (N,M,h,w) integers -> frames (N,3,16h,16w) uint8."""

    layers: tuple[IntDeconv | IntInverseGDN, ...]

    def __post_init__(self) -> None:
        if not self.layers or not isinstance(self.layers[-1], IntDeconv) or self.layers[0].in_bits != 0:
            raise ValueError("integer synthesis: must start from integer latents and end in a deconvolution")

    @torch.no_grad()
    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        a = y.double().round().clamp_(-ACT_LIMIT, ACT_LIMIT)
        with exact_math():
            for layer in self.layers:
                a = layer(a)
        pixels = round_shift_float_(a * 255, self.layers[-1].out_bits)
        return pixels.clamp_(0, 255).to(torch.uint8)

    def to_file(self) -> list[dict]:
        return [{"kind": "deconv", "weight": _narrow(layer.weight), "bias": layer.bias,
                 "in_bits": layer.in_bits, "out_bits": layer.out_bits} if isinstance(layer, IntDeconv) else
                {"kind": "igdn", "gamma": _narrow(layer.gamma), "beta": layer.beta,
                 "bits": layer.bits, "out_bits": layer.out_bits} for layer in self.layers]

    @classmethod
    def from_file(cls, entries: list[dict]) -> "IntSynthesis":
        layers = []
        for e in entries:
            if e["kind"] == "deconv":
                layers.append(IntDeconv(e["weight"].to(torch.int64), e["bias"].to(torch.int64),
                                        int(e["in_bits"]), int(e["out_bits"])))
            else:
                layers.append(IntInverseGDN(e["gamma"].to(torch.int64), e["beta"].to(torch.int64),
                                            int(e["bits"]), int(e["out_bits"])))
        return cls(tuple(layers))


def _narrow(t: torch.Tensor) -> torch.Tensor:
    """int64 -> int16 or int32, the narrowest that holds it (the file's size)."""
    for dtype in (torch.int16, torch.int32):
        if t.abs().max() <= torch.iinfo(dtype).max:
            return t.to(dtype)
    return t


def grid_bits(largest: float) -> int:
    """The finest grid 2^-bits on which HEADROOM * largest still fits within ACT_LIMIT."""
    return max(0, min(24, math.floor(math.log2(ACT_LIMIT / max(HEADROOM * largest, 1e-6)))))


@torch.no_grad()
def quantize_synthesis(g_s: nn.Sequential, latents: list[torch.Tensor]) -> IntSynthesis:
    """Post-training quantisation of a float g_s (transposed convolutions and inverse GDNs, as in
    core.hyperprior) whose activation grids are sized on calibration latents (each (N,M,h,w),
    integers): the largest activation of every layer over them, times HEADROOM."""
    largest = [0.0] * len(g_s)
    for y in latents:
        a = y.float()
        for i, module in enumerate(g_s):
            a = module(a)
            largest[i] = max(largest[i], a.abs().max().item())
    layers, in_bits = [], 0
    for i, module in enumerate(g_s):
        out_bits = OUTPUT_BITS if i == len(g_s) - 1 else grid_bits(largest[i])
        if isinstance(module, nn.ConvTranspose2d):
            if module.stride != (2, 2) or module.padding != (2, 2) or module.output_padding != (1, 1):
                raise ValueError("integer synthesis: expects 5x5 stride-2 transposed convolutions")
            out_bits = min(out_bits, in_bits + WEIGHT_BITS)
            weight = torch.floor(module.weight.double() * 2**WEIGHT_BITS + 0.5).to(torch.int64)
            bias = torch.floor(module.bias.double() * 2 ** (in_bits + WEIGHT_BITS) + 0.5).to(torch.int64)
            layers.append(IntDeconv(weight, bias, in_bits, out_bits))
        else:
            if not getattr(module, "inverse", False):
                raise ValueError("integer synthesis: expects inverse GDN between the deconvolutions")
            out_bits = min(out_bits, 2 * in_bits + GAMMA_BITS // 2)
            gamma = module.gamma_reparam(module.gamma).double()
            beta = module.beta_reparam(module.beta).double()
            layers.append(IntInverseGDN(torch.floor(gamma * 2**GAMMA_BITS + 0.5).to(torch.int64),
                                        torch.floor(beta * 2 ** (GAMMA_BITS + 2 * in_bits) + 0.5).to(torch.int64)
                                        .clamp_(min=1), in_bits, out_bits))
        in_bits = out_bits
    return IntSynthesis(tuple(layers))
