"""Diffusion predictor (kind id 1, the paper's method): MCVD-style conditional diffusion (a small
UNet), sampled with deterministic DDIM from noise seeded by the stream, predicting the residual
against the last context frame. No hints: the stream's seed and step count steer it.

Shapes: context (k,H,W,3) uint8 -> (F,H,W,3) uint8.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from evc_archive.core.ddim import DDIMSampler
from evc_archive.core.model_file import read_model_blob, write_model_blob
from evc_archive.core.predictors.base import NO_HINT, take_context
from evc_archive.core.registry import register_predictor
from evc_archive.core.unet import ConditionalUNet

MODEL_FORMAT = "evc-predictor/1"
WEIGHT_FILE = "predictor.pt"  # the shipped model (evc_archive/models/predictor.md)


@dataclass(frozen=True)
class DiffusionConfig:
    """Architecture and diffusion settings of a diffusion predictor."""

    context_frames: int = 2
    frames_per_call: int = 4
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 4)
    residual_scale: float = 2.0  # x0 = residual_scale * (future - last context frame), in [-1,1] units
    default_steps: int = 6


def frames_to_unit(frames: torch.Tensor) -> torch.Tensor:
    """(n,H,W,3) uint8 -> (1,3n,H,W) float in [-1,1]."""
    n, h, w, _ = frames.shape
    x = frames.permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return x.reshape(1, 3 * n, h, w)


def unit_to_frames(x: torch.Tensor, n: int) -> torch.Tensor:
    """(1,3n,H,W) in [-1,1] -> (n,H,W,3) uint8."""
    _, _, h, w = x.shape
    x = ((x.reshape(n, 3, h, w) + 1.0) * 127.5 + 0.5).floor_().clamp_(0, 255)
    return x.to(torch.uint8).permute(0, 2, 3, 1).contiguous()


class DiffusionPredictor:
    """Loaded once per process; `predict` runs `steps` DDIM steps for F frames at once."""

    def __init__(self, config: DiffusionConfig, unet: ConditionalUNet, content_hash: bytes,
                 model_id: int = 1, device: str = "cpu"):
        self.config = config
        self.unet = unet.to(device).eval()
        for p in self.unet.parameters():
            p.requires_grad_(False)
        self.content_hash = content_hash
        self.model_id = model_id
        self.device = device
        self.context_frames = config.context_frames
        self.frames_per_call = config.frames_per_call

    @staticmethod
    def build_unet(config: DiffusionConfig) -> ConditionalUNet:
        return ConditionalUNet(config.context_frames, config.frames_per_call,
                               config.base_channels, config.channel_mults)

    def hint_candidates(self, context: torch.Tensor, targets: torch.Tensor) -> list[bytes]:
        return list(NO_HINT)

    @torch.no_grad()
    def predict(self, context: torch.Tensor, hint: bytes, seed: int, steps: int) -> torch.Tensor:
        # 1. inputs: the last K frames, padded to the UNet's size multiple
        cfg = self.config
        context = take_context(context, cfg.context_frames)
        _, h, w, _ = context.shape
        m = self.unet.size_multiple
        ph, pw = (-h) % m, (-w) % m
        ctx = F.pad(frames_to_unit(context), (0, pw, 0, ph), mode="replicate").to(self.device)
        last = ctx[:, -3:].repeat(1, cfg.frames_per_call, 1, 1)
        # 2. seeded starting noise, drawn on the CPU so every device starts from the same bits
        generator = torch.Generator().manual_seed(seed)
        shape = (1, 3 * cfg.frames_per_call, h + ph, w + pw)
        sample = torch.randn(shape, generator=generator).to(self.device)
        # 3. denoise
        sampler = DDIMSampler(steps)
        ts = sampler.timesteps().to(self.device)
        for t, t_next in zip(ts[:-1], ts[1:]):
            v = self.unet(ctx, sample, t.expand(1))
            sample = sampler.step(v, t, t_next, sample)
        # 4. residual back to frames
        frames = (last + sample / cfg.residual_scale).clamp(-1, 1)[..., :h, :w]
        return unit_to_frames(frames.cpu(), cfg.frames_per_call)

    # -- files ---------------------------------------------------------------------------------
    @staticmethod
    def save(path: Path, config: DiffusionConfig, unet: ConditionalUNet, extra: dict | None = None) -> bytes:
        """Write weights (stored as float16) and config; returns the sha256 of the file."""
        state = {k: (v.half() if v.is_floating_point() else v).cpu() for k, v in unet.state_dict().items()}
        cfg = asdict(config)
        cfg["channel_mults"] = list(config.channel_mults)
        return write_model_blob(path, {"format": MODEL_FORMAT, "config": cfg, "state_dict": state, "extra": extra or {}})

    @classmethod
    def from_bytes(cls, data: bytes, model_id: int = 1, device: str = "cpu") -> "DiffusionPredictor":
        blob = read_model_blob(data, MODEL_FORMAT, "predictor model")
        cfg = dict(blob["config"])
        cfg["channel_mults"] = tuple(cfg["channel_mults"])
        config = DiffusionConfig(**cfg)
        unet = cls.build_unet(config)
        unet.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()})
        return cls(config, unet, hashlib.sha256(data).digest(), model_id, device)


@lru_cache(maxsize=None)
def load_diffusion(path: str, device: str) -> DiffusionPredictor:
    """A model file, loaded once per process and device."""
    return DiffusionPredictor.from_bytes(Path(path).read_bytes(), 1, device)


@register_predictor(1, "diffusion", "diffusion-unet", weight_file=WEIGHT_FILE,
                    summary="diffusion-int's float model (its frames depend on the machine's convolution kernels "
                    "and torch's random generator; decode-only since 2026-12-07)")
def build(weights: str | None, frames_per_call: int, device: str) -> DiffusionPredictor:
    """F comes from the model file."""
    if weights is None:
        raise ValueError("the diffusion predictor needs its model file")
    return load_diffusion(weights, device)
