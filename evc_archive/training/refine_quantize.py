"""Post-training quantisation of the refine-diffusion model (core.refine) into its integer form
(core.int_refine): per-channel activation scales calibrated on training contexts at the sampler's
times, then per output channel the integer weights with the largest power-of-two shift that keeps
every sum exact (training.int_quantize), and the sampler's tables.

Shapes: calibration condition (n,3(1+K),S,S), target (n,3,S,S) in [-1,1], S even.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from evc_archive.core.ddim import add_noise
from evc_archive.core.int_ops import MAX_INT
from evc_archive.core.int_refine import OUT_BITS, SAMPLE_BITS, TIMES, X_IN_BITS, IntRefineModel, schedule_tables
from evc_archive.core.refine import NOISE_TABLE, RefineConfig, RefineNet
from evc_archive.training.int_quantize import quantize_conv
from evc_archive.training.refine_data import RefineContexts

OUT_LIMIT = 1 << 20  # |x0| * 2^OUT_BITS: estimates of magnitude up to 1024


@torch.no_grad()
def activation_scales(net: RefineNet, config: RefineConfig, condition: torch.Tensor, target: torch.Tensor,
                      seed: int = 0, batch: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (stream scale (C,), hidden scale (blocks, C)): per channel the largest value of the
    residual stream or of each block's ReLU output over the calibration contexts, each at every
    sampler time with fresh noise, over MAX_INT."""
    gen = torch.Generator().manual_seed(seed)
    c = net.head.out_channels
    stream = torch.zeros(c, dtype=torch.float64)
    hidden = torch.zeros(len(net.body), c, dtype=torch.float64)
    for t in TIMES[:-1]:  # t = 0 is never asked
        for start in range(0, condition.shape[0], batch):
            b = condition[start:start + batch]
            x0 = config.residual_scale * (target[start:start + batch] - b[:, :3])
            times = torch.full((b.shape[0],), float(t))
            x_t, _ = add_noise(x0, torch.randn(x0.shape, generator=gen), times)
            a = F.pixel_unshuffle(torch.cat([b, x_t], 1), 2)
            h = F.relu(net.head(torch.cat([a, times.reshape(-1, 1, 1, 1).expand(-1, 1, *a.shape[2:])], 1)))
            stream = torch.maximum(stream, h.amax(dim=(0, 2, 3)).double())
            for i, block in enumerate(net.body):
                hid = F.relu(block.conv1(h))
                hidden[i] = torch.maximum(hidden[i], hid.amax(dim=(0, 2, 3)).double())
                h = h + block.conv2(hid)
                stream = torch.maximum(stream, h.abs().amax(dim=(0, 2, 3)).double())
    tiny = 1e-6  # a channel that is never active still needs a positive scale
    return stream.clamp(min=tiny) / MAX_INT, hidden.clamp(min=tiny) / MAX_INT


def quantize(net: RefineNet, config: RefineConfig, condition: torch.Tensor, target: torch.Tensor) -> IntRefineModel:
    """A float RefineNet and calibration contexts -> its integer model."""
    net = net.eval()
    stream, hidden = activation_scales(net, config, condition, target)
    in_scale = torch.tensor([1 / 255] * (4 * config.condition_channels) + [2.0 ** -X_IN_BITS] * 12 + [1 / 255],
                            dtype=torch.float64)
    head = quantize_conv(net.head, in_scale, stream)
    blocks = tuple((quantize_conv(b.conv1, stream, hidden[i]), quantize_conv(b.conv2, hidden[i], stream))
                   for i, b in enumerate(net.body))
    tail = quantize_conv(net.tail, stream, torch.full((12,), 2.0 ** -OUT_BITS, dtype=torch.float64), limit=OUT_LIMIT)
    alpha, sigma = schedule_tables()
    noise = torch.round(NOISE_TABLE.double() * (1 << SAMPLE_BITS)).to(torch.int64)
    return IntRefineModel(config, head, blocks, tail, alpha, sigma, noise)


def calibration_contexts(contexts: RefineContexts, context_frames: int, count: int = 256,
                         seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(condition (count,3(1+K),S,S), target (count,3,S,S)) in [-1,1]: whole crops of the contexts file."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(contexts), generator=gen)[:count]
    return (contexts.condition(idx, context_frames).float().cpu() / 127.5 - 1.0,
            contexts.target[idx].float().cpu() / 127.5 - 1.0)
