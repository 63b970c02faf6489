"""A small conditional UNet for next-frame diffusion (MCVD-style: past frames are concatenated to
the noisy future frames as input channels; the time step enters every residual block).

Fully convolutional: any H, W that are multiples of 2**(len(channel_mults)-1) (callers pad).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """t (N,) in [0,1] -> sinusoidal features (N,dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    args = 1000.0 * t[:, None].float() * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with a FiLM (scale, shift) from the time embedding."""

    def __init__(self, cin: int, cout: int, emb_dim: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(8, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.norm2 = nn.GroupNorm(8, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return self.skip(x) + h


class ConditionalUNet(nn.Module):
    """(context (N,3K,H,W), noisy (N,3F,H,W), t (N,)) -> v-prediction (N,3F,H,W)."""

    def __init__(self, context_frames: int, frames_per_call: int, base_channels: int = 32,
                 channel_mults: tuple[int, ...] = (1, 2, 4)):
        super().__init__()
        emb_dim = base_channels * 4
        self.emb_dim = emb_dim
        self.time_mlp = nn.Sequential(
            nn.Linear(base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        self.base_channels = base_channels
        chans = [base_channels * m for m in channel_mults]
        self.stem = nn.Conv2d(3 * (context_frames + frames_per_call), chans[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        for i, c in enumerate(chans):
            self.down.append(ResBlock(chans[i - 1] if i else chans[0], c, emb_dim))
            if i < len(chans) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid = ResBlock(chans[-1], chans[-1], emb_dim)
        self.up = nn.ModuleList()
        for i in reversed(range(len(chans))):
            cout = chans[i - 1] if i else chans[0]
            self.up.append(ResBlock(2 * chans[i], cout, emb_dim))
        self.out_norm = nn.GroupNorm(8, chans[0])
        self.out = nn.Conv2d(chans[0], 3 * frames_per_call, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @property
    def size_multiple(self) -> int:
        return 2 ** len(self.downsample)

    def forward(self, context: torch.Tensor, noisy: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.base_channels))
        h = self.stem(torch.cat([context, noisy], dim=1))
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.mid(h, emb)
        for block in self.up:
            skip = skips.pop()
            if h.shape[-2:] != skip.shape[-2:]:
                h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = block(torch.cat([h, skip], dim=1), emb)
        return self.out(F.silu(self.out_norm(h)))
