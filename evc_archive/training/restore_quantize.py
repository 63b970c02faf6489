"""Post-training quantisation of the restoration model (core.restore) into its integer form
(core.int_restore): per-channel activation scales calibrated on training pairs, then per output
channel the integer weights with the largest power-of-two shift that keeps every sum exact.

Shapes: calibration frames (n,H,W,3) uint8 with H, W even.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from evc_archive.core.int_ops import MAX_INT
from evc_archive.core.int_restore import INPUT_SCALE, OUTPUT_SCALE, IntRestoreModel
from evc_archive.core.restore import RestoreConfig, RestoreNet, to_unit
from evc_archive.training.int_quantize import quantize_conv as _quantize_conv
from evc_archive.training.restore_data import RestorePairs


@torch.no_grad()
def activation_scales(net: RestoreNet, frames: torch.Tensor, batch: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Calibration frames (n,H,W,3) uint8 -> (stream scale (C,), hidden scale (blocks, C)): per
    channel the largest value of the residual stream (after any block) or of each block's ReLU
    output, over MAX_INT."""
    stream = torch.zeros(net.head.out_channels, dtype=torch.float64)
    hidden = torch.zeros(len(net.body), net.head.out_channels, dtype=torch.float64)
    for start in range(0, frames.shape[0], batch):
        x = F.relu(net.head(F.pixel_unshuffle(to_unit(frames[start:start + batch]), 2)))
        stream = torch.maximum(stream, x.amax(dim=(0, 2, 3)).double())
        for i, block in enumerate(net.body):
            hid = F.relu(block.conv1(x))
            hidden[i] = torch.maximum(hidden[i], hid.amax(dim=(0, 2, 3)).double())
            x = x + block.conv2(hid)
            stream = torch.maximum(stream, x.abs().amax(dim=(0, 2, 3)).double())
    tiny = 1e-6  # a channel that is never active still needs a positive scale
    return stream.clamp(min=tiny) / MAX_INT, hidden.clamp(min=tiny) / MAX_INT


def quantize(net: RestoreNet, config: RestoreConfig, calibration: torch.Tensor) -> IntRestoreModel:
    """A float RestoreNet and calibration frames (n,H,W,3) uint8 -> its integer model."""
    net = net.eval()
    stream, hidden = activation_scales(net, calibration)
    pixel_in = torch.full((net.head.in_channels,), INPUT_SCALE, dtype=torch.float64)
    head = _quantize_conv(net.head, pixel_in, stream)
    blocks = tuple((_quantize_conv(b.conv1, stream, hidden[i]), _quantize_conv(b.conv2, hidden[i], stream))
                   for i, b in enumerate(net.body))
    tail = _quantize_conv(net.tail, stream, torch.full((net.tail.out_channels,), OUTPUT_SCALE, dtype=torch.float64))
    return IntRestoreModel(config, head, blocks, tail)


def calibration_frames(pairs: RestorePairs, count: int = 512, seed: int = 0) -> torch.Tensor:
    """(count,S,S,3) uint8 from a training pairs file: decoded crops (3 in 4) and their clean crops."""
    gen = torch.Generator().manual_seed(seed)
    size = max(pairs.decoded)
    idx = torch.randperm(pairs.decoded[size].shape[0], generator=gen)[:count]
    n_clean = count // 4
    frames = torch.cat([pairs.decoded[size][idx[n_clean:]], pairs.clean[size][idx[:n_clean]]])
    return frames.permute(0, 2, 3, 1).contiguous().cpu()
