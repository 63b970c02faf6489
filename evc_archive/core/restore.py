"""Learned restoration of decoded frames: a small residual CNN that maps a frame as the keyframe
codec's decoder gives it (soft, ringing) to an estimate of the source frame.

Trained (jobs/train_restore.py) on pairs of training-clip frames and their SVT-AV1 intra decodes at
the loop's quality levels, with L1 plus LPIPS, and on clean frames mapped to themselves so that a
frame that is already sharp passes through. The restore-hint predictor (core.predictors.restore_hint) uses it.

Shapes: frames (n,H,W,3) uint8 -> (n,H,W,3) uint8. Any H, W (padded to a multiple of 2 inside).
The output is rounded to uint8 from float32 arithmetic: the same bits wherever the same
convolution kernels run (see docs/bitstream.md on float predictors).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from evc_archive.core.model_file import read_model_blob, write_model_blob

MODEL_FORMAT = "evc-restore/1"


@dataclass(frozen=True)
class RestoreConfig:
    """Architecture: pixel-unshuffle by 2, `blocks` residual blocks of `channels` at half
    resolution, pixel-shuffle back; the output is added to the input."""

    channels: int = 48
    blocks: int = 8


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class RestoreNet(nn.Module):
    """(B,3,H,W) in [-1,1], H and W even -> (B,3,H,W) in [-1,1] (not clamped)."""

    def __init__(self, config: RestoreConfig):
        super().__init__()
        c = config.channels
        self.head = nn.Conv2d(12, c, 3, padding=1)
        self.body = nn.Sequential(*[ResidualBlock(c) for _ in range(config.blocks)])
        self.tail = nn.Conv2d(c, 12, 3, padding=1)
        nn.init.zeros_(self.tail.weight)  # starts as the identity
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(F.pixel_unshuffle(x, 2))
        return x + F.pixel_shuffle(self.tail(self.body(F.relu(h))), 2)


def to_unit(frames: torch.Tensor) -> torch.Tensor:
    """(n,H,W,3) uint8 -> (n,3,H,W) float in [-1,1]."""
    return frames.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """(n,3,H,W) float in [-1,1] -> (n,H,W,3) uint8, rounded half up."""
    return ((x + 1.0) * 127.5 + 0.5).floor_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


class Restorer:
    """A loaded restoration model; `content_hash` is the sha256 of its file."""

    integer = False  # float32 arithmetic (core.int_restore.IntRestorer is the integer form)

    def __init__(self, config: RestoreConfig, net: RestoreNet, content_hash: bytes, device: str = "cpu"):
        self.config = config
        self.net = net.to(device).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.content_hash = content_hash
        self.device = device

    @torch.no_grad()
    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (n,H,W,3) uint8 -> restored (n,H,W,3) uint8."""
        _, h, w, _ = frames.shape
        x = to_unit(frames).to(self.device)
        x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
        return to_uint8(self.net(x)[..., :h, :w].cpu())

    # -- files ---------------------------------------------------------------------------------
    @staticmethod
    def save(path: Path, config: RestoreConfig, net: RestoreNet, extra: dict | None = None) -> bytes:
        """Write float32 weights and config; returns the sha256 of the file."""
        state = {k: v.detach().float().cpu() for k, v in net.state_dict().items()}
        return write_model_blob(path, {"format": MODEL_FORMAT, "config": asdict(config), "state_dict": state,
                                       "extra": extra or {}})

    @classmethod
    def from_bytes(cls, data: bytes, device: str = "cpu") -> "Restorer":
        blob = read_model_blob(data, MODEL_FORMAT, "restoration model")
        config = RestoreConfig(**blob["config"])
        net = RestoreNet(config)
        net.load_state_dict(blob["state_dict"])
        return cls(config, net, hashlib.sha256(data).digest(), device)

    @classmethod
    def load(cls, path: Path, device: str = "cpu") -> "Restorer":
        return cls.from_bytes(Path(path).read_bytes(), device)
