"""The refine-diffusion model: a few-step conditional diffusion model that generates the detail the
default predictor's frame lacks, as a residual on that frame.

The default predictor (restore-hint) gives, for each predicted position, a base frame: the
restored last decoded frame moved by the encoder's velocity. This model samples
x0 = residual_scale * (frame - base) in [-1,1] units given the condition: the base frame and, where
the config's `context_frames` K > 0, the last K frames the decoder has as they were decoded (the
motion between them, and what the restoration took away, are what the base frame cannot show;
fewer frames at a segment's start repeat the oldest). The network predicts x0
from the noisy x_t of a cosine schedule (core.ddim), and the sampler takes its estimate at each step
and noises it again to the next step's level with fresh noise (a consistency-style multistep
sampler). Those fresh noises are what the encoder may steer: each comes either from the call's
seed or from a seeded codebook, one index per frame and step (core.predictors.refine_diffusion).

The last layer starts at zero, so an untrained model gives the base frames back: the residual is
small and mostly unpredictable, and x0-prediction from zero keeps what training cannot learn at
"add nothing" instead of at noise.

The network has the integer-friendly form of the restoration model (core.restore): pixel-unshuffle
by 2, ReLU residual blocks of 3x3 convolutions at half resolution, pixel-shuffle back, no
normalisation layers; the step's time enters as a constant input plane.

Shapes: condition (B,3(1+K),H,W) (the base frame first), x_t, x0 (B,3,H,W) in [-1,1]-units, H and
W even; t (B,) in [0,1].
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from statistics import NormalDist

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evc_archive.core.ddim import alpha_sigma
from evc_archive.core.int_ops import noise_index
from evc_archive.core.model_file import read_model_blob, write_model_blob
from evc_archive.core.predictors.base import take_context
from evc_archive.core.restore import ResidualBlock

MODEL_FORMAT = "evc-refine/1"
NOISE_LEVELS = 4096  # Gaussian quantiles a noise sample is drawn from (12 bits of hash a sample)
# (i + 1/2) / NOISE_LEVELS quantiles of N(0,1), in Python's own double arithmetic (the same everywhere)
NOISE_TABLE = torch.tensor([NormalDist().inv_cdf((i + 0.5) / NOISE_LEVELS) for i in range(NOISE_LEVELS)],
                           dtype=torch.float32)


@dataclass(frozen=True)
class RefineConfig:
    """Architecture and sampling of a refine-diffusion model."""

    channels: int = 32
    blocks: int = 4
    residual_scale: float = 4.0  # x0 = residual_scale * (frame - base frame), frames in [-1,1]
    context_frames: int = 0  # decoded frames the condition carries beside the base frame (K)

    @property
    def condition_channels(self) -> int:
        return 3 * (1 + self.context_frames)


class RefineNet(nn.Module):
    """(condition, x_t, t) -> x0 estimate: (B,3(1+K),H,W), (B,3,H,W), (B,) -> (B,3,H,W); H and W even."""

    def __init__(self, config: RefineConfig):
        super().__init__()
        c = config.channels
        self.head = nn.Conv2d((config.condition_channels + 3) * 4 + 1, c, 3, padding=1)
        self.body = nn.Sequential(*[ResidualBlock(c) for _ in range(config.blocks)])
        self.tail = nn.Conv2d(c, 12, 3, padding=1)
        nn.init.zeros_(self.tail.weight)  # starts at x0 = 0: the base frames unchanged
        nn.init.zeros_(self.tail.bias)

    def forward(self, condition: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x = F.pixel_unshuffle(torch.cat([condition, x_t], 1), 2)
        plane = t.reshape(-1, 1, 1, 1).to(x.dtype).expand(x.shape[0], 1, x.shape[2], x.shape[3])
        h = F.relu(self.head(torch.cat([x, plane], 1)))
        return F.pixel_shuffle(self.tail(self.body(h)), 2)


def hashed_gaussian(key: int, count: int) -> torch.Tensor:
    """count N(0,1) samples (float32) from NOISE_TABLE at noise_index(key, count)."""
    return NOISE_TABLE[noise_index(key, count)]


def noise_key(seed: int, frame: int, step: int, entry: int | None) -> int:
    """The 32-bit key of one noise: the call's seed, the frame in the call, the sampler step and the
    codebook entry (None: the seed's own noise, not a codebook's)."""
    text = f"{seed}:{frame}:{step}:{'s' if entry is None else entry}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=4).digest(), "little")


def condition_frames(base: torch.Tensor, context: torch.Tensor | None, k: int) -> torch.Tensor:
    """base (n,H,W,3), context (c,H,W,3) (oldest first, c >= 1) -> (n,H,W,3(1+k)): each base frame
    with the last k context frames (the oldest repeated where c < k), channels frame-major."""
    if k == 0:
        return base
    if context is None:
        raise ValueError(f"this refine model conditions on {k} decoded frames: pass them")
    last = take_context(context, k)
    frames = torch.cat([base[:, None], last[None].expand(base.shape[0], *last.shape)], 1)  # (n,1+k,H,W,3)
    return frames.permute(0, 2, 3, 1, 4).reshape(*base.shape[:3], 3 * (1 + k))


def sample_times(steps: int) -> list[Fraction]:
    """(steps+1,) times from 1 (pure noise) down to 0."""
    return [Fraction(steps - j, steps) for j in range(steps + 1)]


class Refiner:
    """A loaded refine-diffusion model; `content_hash` is the sha256 of its file, `base_model` the
    bytes of the restoration model file its base frames come from (carried inside the file, so the
    file alone fixes the predictor)."""

    integer = False

    def __init__(self, config: RefineConfig, net: RefineNet, content_hash: bytes, base_model: bytes,
                 device: str = "cpu"):
        self.config, self.content_hash, self.base_model, self.device = config, content_hash, base_model, device
        self.net = net.to(device).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    # -- the sampler interface (core.int_refine.IntRefiner has the same) -------------------------
    @staticmethod
    def to_units(frames: torch.Tensor) -> torch.Tensor:
        """(n,H,W,3) uint8 -> (n,3,H',W') in [-1,1], padded (edge) to even H', W'."""
        _, h, w, _ = frames.shape
        return F.pad(frames.permute(0, 3, 1, 2).float() / 127.5 - 1.0, (0, w % 2, 0, h % 2), mode="replicate")

    def prepare(self, base: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """base (n,H,W,3) uint8 (one per predicted frame), context (k,H,W,3) uint8 (the decoded
        frames, oldest first; a model with K = 0 needs none) -> condition (n,3(1+K),H',W')."""
        return self.to_units(condition_frames(base, context, self.config.context_frames))

    @staticmethod
    def noise(key: int, count: int) -> torch.Tensor:
        return hashed_gaussian(key, count)

    @torch.no_grad()
    def x0(self, condition: torch.Tensor, x: torch.Tensor, t: Fraction) -> torch.Tensor:
        """condition (B,3(1+K),H,W), x (B,3,H,W) (H, W even) -> the model's x0 estimate at time t."""
        return self.net(condition.to(self.device), x.to(self.device),
                        torch.full((condition.shape[0],), float(t), device=self.device)).cpu()

    @staticmethod
    def renoise(x0: torch.Tensor, noise: torch.Tensor, t: Fraction) -> torch.Tensor:
        alpha, sigma = alpha_sigma(torch.tensor(float(t)))
        return alpha * x0 + sigma * noise

    def frames(self, condition: torch.Tensor, x0: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """condition (n,3(1+K),H',W') and x0 -> (n,height,width,3) uint8 (rounded half up)."""
        out = (condition[:, :3] + x0 / self.config.residual_scale)[..., :height, :width]
        return ((out + 1.0) * 127.5 + 0.5).floor_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()

    def x0_of(self, targets: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Encoder only: the x0 that gives `targets` (m,H,W,3) uint8 from the condition's base frames."""
        return (self.to_units(targets) - condition[:targets.shape[0], :3]) * self.config.residual_scale

    # -- files ---------------------------------------------------------------------------------
    @staticmethod
    def save(path: Path, config: RefineConfig, net: RefineNet, base_model: bytes, extra: dict | None = None) -> bytes:
        """Write float32 weights, config and the base restoration model's file; returns the sha256 of the file."""
        state = {k: v.detach().float().cpu() for k, v in net.state_dict().items()}
        base = torch.from_numpy(np.frombuffer(base_model, np.uint8).copy())
        return write_model_blob(path, {"format": MODEL_FORMAT, "config": asdict(config), "state_dict": state,
                                       "base_model": base, "extra": extra or {}})

    @classmethod
    def from_bytes(cls, data: bytes, device: str = "cpu") -> "Refiner":
        blob = read_model_blob(data, MODEL_FORMAT, "refine-diffusion model")
        config = RefineConfig(**blob["config"])
        net = RefineNet(config)
        net.load_state_dict(blob["state_dict"])
        return cls(config, net, hashlib.sha256(data).digest(), blob["base_model"].numpy().tobytes(), device)

    @classmethod
    def load(cls, path: Path, device: str = "cpu") -> "Refiner":
        return cls.from_bytes(Path(path).read_bytes(), device)
