"""Post-training quantisation of the diffusion UNet (core.unet) into its integer form (core.int_unet):
per-tensor activation scales calibrated on training sequences at every sampler time (their peak
times HEADROOM in 16 bits), convolutions by training.int_quantize (wide), GroupNorm affine and FiLM
folded into per-time gain/offset tables, and the sigmoid, the sampler's constants and the noise
quantiles as stored tables.

Shapes: calibration video (B,K+F,3,H,W) in [0,1], H and W multiples of the UNet's size multiple.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import torch
import torch.nn.functional as F

from evc_archive.core.ddim import add_noise
from evc_archive.core.int_ops import WIDE_INT
from evc_archive.core.int_unet import (GAIN_BITS, MAX_STEPS, NOISE_LEVELS, NORM_BITS, PRE_BITS, PRE_LIMIT,
                                       RESCALE_BITS, SAMPLE_BITS, SILU_BITS, STEP_BITS, IntNormSiLU, IntRescale,
                                       IntResBlock, IntUNet, IntUNetModel, sampler_times)
from evc_archive.core.predictors.diffusion import DiffusionConfig
from evc_archive.core.unet import ConditionalUNet, ResBlock, timestep_embedding
from evc_archive.training.int_quantize import quantize_conv

HEADROOM = 2.0  # a tensor's integers reach WIDE_INT at HEADROOM x its calibration peak
CONTEXT_SCALE = 1.0 / 255.0  # the context's integers 2p - 255
TINY = 1e-6  # a tensor never active still needs a positive scale


def film(block: ResBlock, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(T,emb_dim) time embeddings -> FiLM (scale, shift), each (T,C)."""
    return block.emb(emb).chunk(2, dim=1)


class RangeRecorder:
    """The largest magnitude of each named tensor over the calibration batches."""

    def __init__(self):
        self.peak: dict[str, float] = {}

    def __call__(self, name: str, x: torch.Tensor) -> torch.Tensor:
        self.peak[name] = max(self.peak.get(name, 0.0), float(x.detach().abs().max()))
        return x

    def scale(self, name: str) -> float:
        """The tensor's scale: its integers reach WIDE_INT at HEADROOM x the recorded peak."""
        return max(self.peak[name], TINY) * HEADROOM / WIDE_INT


def _record_block(block: ResBlock, x: torch.Tensor, emb: torch.Tensor, name: str, rec: RangeRecorder) -> torch.Tensor:
    """ResBlock.forward, recording every tensor the integer block quantises."""
    pre1 = rec(f"{name}.pre1", block.norm1(x))
    h = rec(f"{name}.conv1", block.conv1(rec(f"{name}.silu1", F.silu(pre1))))
    scale, shift = block.emb(emb)[:, :, None, None].chunk(2, dim=1)
    pre2 = rec(f"{name}.pre2", block.norm2(h) * (1 + scale) + shift)
    h = block.conv2(rec(f"{name}.silu2", F.silu(pre2)))
    return rec(f"{name}.out", block.skip(x) + h)


@torch.no_grad()
def calibrate_into(rec: RangeRecorder, unet: ConditionalUNet, context: torch.Tensor, noisy: torch.Tensor,
                   t: torch.Tensor) -> RangeRecorder:
    """One batch of (context (B,3K,H,W), noisy (B,3F,H,W), t (B,)) through the float UNet, its peaks into rec."""
    emb = unet.time_mlp(timestep_embedding(t, unet.base_channels))
    h = rec("stem", unet.stem(torch.cat([context, noisy], dim=1)))
    skips = []
    for i, block in enumerate(unet.down):
        h = _record_block(block, h, emb, f"down{i}", rec)
        skips.append(h)
        if i < len(unet.downsample):
            h = rec(f"downsample{i}", unet.downsample[i](h))
    h = _record_block(unet.mid, h, emb, "mid", rec)
    for i, block in enumerate(unet.up):
        skip = skips.pop()
        if h.shape[-2:] != skip.shape[-2:]:
            h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
        h = _record_block(block, torch.cat([h, skip], dim=1), emb, f"up{i}", rec)
    pre = rec("out_norm.pre", unet.out_norm(h))
    rec("v", unet.out(rec("out_norm.silu", F.silu(pre))))
    return rec


def calibration_batches(config: DiffusionConfig, video: torch.Tensor, seed: int = 0,
                        batch: int = 8):
    """video (B,K+F,3,H,W) in [0,1] -> (context, noisy, t) batches as training forms them, each
    sequence at a sampler time chosen in turn (every time is visited)."""
    gen = torch.Generator().manual_seed(seed)
    times = torch.tensor([float(t) for t in sampler_times()])
    k, f = config.context_frames, config.frames_per_call
    for start in range(0, video.shape[0], batch):
        seq = video[start:start + batch]
        b, _, _, h, w = seq.shape
        unit = seq * 2 - 1
        context = unit[:, :k].reshape(b, 3 * k, h, w)
        x0 = config.residual_scale * (unit[:, k:] - unit[:, k - 1:k]).reshape(b, 3 * f, h, w)
        t = times[(torch.arange(b) + start) % len(times)]
        noisy, _ = add_noise(x0, torch.randn(x0.shape, generator=gen), t)
        # the integer UNet sees the noisy input at the sampler's resolution
        noisy = (noisy * 2 ** SAMPLE_BITS).round().clamp(-WIDE_INT, WIDE_INT) / 2 ** SAMPLE_BITS
        yield context, noisy, t


def silu_table() -> torch.Tensor:
    """(2 * PRE_LIMIT + 1,) silu((i - PRE_LIMIT) / 2^PRE_BITS) * 2^SILU_BITS, rounded."""
    x = (torch.arange(2 * PRE_LIMIT + 1, dtype=torch.float64) - PRE_LIMIT) / 2 ** PRE_BITS
    return torch.round(F.silu(x) * 2 ** SILU_BITS).clamp(-WIDE_INT, WIDE_INT).to(torch.int64)


SILU_SCALE = 2.0 ** -SILU_BITS


def _norm_silu(norm: torch.nn.GroupNorm, in_scale: torch.Tensor, gain: torch.Tensor, offset: torch.Tensor) -> IntNormSiLU:
    """GroupNorm whose input channels hold integers * in_scale (C,), then value * gain + offset
    ((T,C) float: the affine with FiLM folded in), then SiLU (output scale SILU_SCALE)."""
    group_scale = in_scale.double().reshape(norm.num_groups, -1)[:, 0]  # a group's channels share a scale
    eps = torch.round(norm.eps / group_scale ** 2).to(torch.int64)
    return IntNormSiLU(norm.num_groups, eps, torch.round(gain * 2 ** GAIN_BITS).to(torch.int64),
                       torch.round(offset * 2 ** (NORM_BITS + GAIN_BITS)).to(torch.int64))


def _full(n: int, value: float) -> torch.Tensor:
    return torch.full((n,), value, dtype=torch.float64)


def _conv(conv: torch.nn.Conv2d, in_scale: torch.Tensor, out_scale: float):
    """A wide IntConv with one output scale."""
    return quantize_conv(conv, in_scale, _full(conv.out_channels, out_scale), limit=WIDE_INT, wide=True)


def _block(block: ResBlock, in_scale: torch.Tensor, emb: torch.Tensor, name: str, rec: RangeRecorder) -> IntResBlock:
    gamma1, beta1 = block.norm1.weight.double()[None], block.norm1.bias.double()[None]
    norm1 = _norm_silu(block.norm1, in_scale, gamma1, beta1)
    cout = block.conv1.out_channels
    conv1_scale = rec.scale(f"{name}.conv1")
    conv1 = _conv(block.conv1, _full(block.conv1.in_channels, SILU_SCALE), conv1_scale)
    scale, shift = (v.double() for v in film(block, emb))
    gamma2, beta2 = block.norm2.weight.double()[None], block.norm2.bias.double()[None]
    norm2 = _norm_silu(block.norm2, _full(cout, conv1_scale), gamma2 * (1 + scale), beta2 * (1 + scale) + shift)
    out_scale = rec.scale(f"{name}.out")
    conv2 = _conv(block.conv2, _full(cout, SILU_SCALE), out_scale)
    if isinstance(block.skip, torch.nn.Conv2d):
        skip = _conv(block.skip, in_scale, out_scale)
    else:
        skip = IntRescale(int(round(float(in_scale[0]) / out_scale * 2 ** RESCALE_BITS)))
    return IntResBlock(norm1, conv1, norm2, conv2, skip)


def sampler_tables(v_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per step count n = 1..MAX_STEPS: cos(pi/2n) * 2^16 and -sin(pi/2n) * v_scale * 2^(12+16)."""
    d = [math.pi / (2 * n) for n in range(1, MAX_STEPS + 1)]
    gain = torch.tensor([round(math.cos(a) * 2 ** STEP_BITS) for a in d], dtype=torch.int64)
    v = torch.tensor([round(-math.sin(a) * v_scale * 2 ** (SAMPLE_BITS + STEP_BITS)) for a in d], dtype=torch.int64)
    return gain, v


def noise_quantiles() -> torch.Tensor:
    """(NOISE_LEVELS,) the standard normal's quantiles at (i + 1/2) / NOISE_LEVELS, times 2^12."""
    dist = NormalDist()
    return torch.tensor([round(dist.inv_cdf((i + 0.5) / NOISE_LEVELS) * 2 ** SAMPLE_BITS)
                         for i in range(NOISE_LEVELS)], dtype=torch.int64)


@torch.no_grad()
def quantize(unet: ConditionalUNet, config: DiffusionConfig, video: torch.Tensor, seed: int = 0) -> IntUNetModel:
    """A float ConditionalUNet and calibration video (B,K+F,3,H,W) in [0,1] -> its integer model."""
    unet = unet.eval()
    rec = RangeRecorder()
    for context, noisy, t in calibration_batches(config, video, seed):
        calibrate_into(rec, unet, context, noisy, t)
    times = torch.tensor([float(t) for t in sampler_times()])
    emb = unet.time_mlp(timestep_embedding(times, unet.base_channels))
    k, f = config.context_frames, config.frames_per_call
    stem_in = torch.cat([_full(3 * k, CONTEXT_SCALE), _full(3 * f, 2.0 ** -SAMPLE_BITS)])
    stem = _conv(unet.stem, stem_in, rec.scale("stem"))
    scale = _full(unet.stem.out_channels, rec.scale("stem"))
    down, downsample, skip_scales = [], [], []
    for i, block in enumerate(unet.down):
        down.append(_block(block, scale, emb, f"down{i}", rec))
        scale = _full(block.conv2.out_channels, rec.scale(f"down{i}.out"))
        skip_scales.append(scale)
        if i < len(unet.downsample):
            ds = unet.downsample[i]
            downsample.append(_conv(ds, scale, rec.scale(f"downsample{i}")))
            scale = _full(ds.out_channels, rec.scale(f"downsample{i}"))
    mid = _block(unet.mid, scale, emb, "mid", rec)
    scale = _full(unet.mid.conv2.out_channels, rec.scale("mid.out"))
    up = []
    for i, block in enumerate(unet.up):
        scale = torch.cat([scale, skip_scales.pop()])
        up.append(_block(block, scale, emb, f"up{i}", rec))
        scale = _full(block.conv2.out_channels, rec.scale(f"up{i}.out"))
    out_norm = _norm_silu(unet.out_norm, scale, unet.out_norm.weight.double()[None], unet.out_norm.bias.double()[None])
    v_scale = rec.scale("v")
    out = _conv(unet.out, _full(unet.out.in_channels, SILU_SCALE), v_scale)
    step_gain, step_v = sampler_tables(v_scale)
    return IntUNetModel(stem, tuple(down), tuple(downsample), mid, tuple(up), out_norm, out, step_gain, step_v,
                        noise_quantiles(), silu_table())


@torch.no_grad()
def v_relative_error(unet: ConditionalUNet, model: IntUNetModel, config: DiffusionConfig, video: torch.Tensor,
                     seed: int = 1) -> float:
    """Relative RMS of the integer model's v against the float UNet's over the (context, noisy, t)
    batches of video (B,K+F,3,H,W) in [0,1]."""
    integer, index = IntUNet(model), {float(t): i for i, t in enumerate(sampler_times())}
    v_scale = -float(model.step_v[0]) / 2 ** (SAMPLE_BITS + STEP_BITS)  # one step: -sin(pi/2) * v_scale
    err = ref = 0.0
    for context, noisy, t in calibration_batches(config, video, seed):
        v = unet(context, noisy, t).double()
        for b in range(context.shape[0]):
            ti = index[min(index, key=lambda x: abs(x - float(t[b])))]
            vi = integer(torch.round(context[b:b + 1] * 255).long(),
                         torch.round(noisy[b:b + 1] * 2 ** SAMPLE_BITS).long(), ti)
            err += float((vi.double() * v_scale - v[b:b + 1]).pow(2).sum())
            ref += float(v[b:b + 1].pow(2).sum())
    return (err / ref) ** 0.5
