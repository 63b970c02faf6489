"""Integer diffusion predictor (kind id 8): the shipped diffusion model quantised
(core.int_unet), so a stream decodes to the same frames on any hardware. Same method as kind 1
(conditional UNet, deterministic DDIM, residual against the last context frame); its starting
noise comes from core.int_unet.hashed_noise, not torch's generator, and it samples 1 to
int_unet.MAX_STEPS steps.

Shapes: context (k,H,W,3) uint8 -> (F,H,W,3) uint8.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from evc_archive.core.int_ops import WIDE_INT, round_div, round_shift
from evc_archive.core.int_unet import MAX_STEPS, SAMPLE_BITS, STEP_BITS, IntUNet, IntUNetModel, hashed_noise, sampler_times
from evc_archive.core.model_file import read_model_blob, write_model_blob
from evc_archive.core.predictors.base import NO_HINT, take_context
from evc_archive.core.predictors.diffusion import DiffusionConfig
from evc_archive.core.registry import register_predictor

MODEL_FORMAT = "evc-predictor-int/1"
WEIGHT_FILE = "predictor-int.pt"  # the shipped model (evc_archive/models/predictor-int.md)


class IntDiffusionPredictor:
    """The integer diffusion predictor (same calls as core.predictors.diffusion.DiffusionPredictor);
    `content_hash` is the sha256 of its model file."""

    integer = True

    def __init__(self, config: DiffusionConfig, model: IntUNetModel, content_hash: bytes, model_id: int, device: str = "cpu"):
        self.config, self.model, self.content_hash, self.model_id = config, model, content_hash, model_id
        self.device = device
        self.unet = IntUNet(model, device)
        self.context_frames = config.context_frames
        self.frames_per_call = config.frames_per_call
        self._time_index = {t: i for i, t in enumerate(sampler_times())}
        self.size_multiple = 2 ** len(model.downsample)

    def hint_candidates(self, context: torch.Tensor, targets: torch.Tensor) -> list[bytes]:
        return list(NO_HINT)

    @torch.no_grad()
    def predict(self, context: torch.Tensor, hint: bytes, seed: int, steps: int) -> torch.Tensor:
        """context (k,H,W,3) uint8 -> (F,H,W,3) uint8."""
        if not 1 <= steps <= MAX_STEPS:
            raise ValueError(f"the integer diffusion model samples 1 to {MAX_STEPS} steps, not {steps}")
        cfg, m = self.config, self.model
        context = take_context(context, cfg.context_frames)
        k, h, w, _ = context.shape
        ph, pw = (-h) % self.size_multiple, (-w) % self.size_multiple
        pixels = context.permute(0, 3, 1, 2).reshape(1, 3 * k, h, w).to(self.device, torch.int64)
        pixels = F.pad(pixels.float(), (0, pw, 0, ph), mode="replicate").to(torch.int64)
        ctx = 2 * pixels - 255  # the float net's input times 255
        shape = (1, 3 * cfg.frames_per_call, h + ph, w + pw)
        sample = hashed_noise(seed, int(np.prod(shape)), m.noise).reshape(shape).to(self.device)
        gain, v_gain = m.step_gain[steps - 1].item(), m.step_v[steps - 1].item()
        for j in range(steps):
            noisy = sample.clamp(-WIDE_INT, WIDE_INT)
            v = self.unet(ctx, noisy, self._time_index[Fraction(steps - j, steps)])
            sample = round_shift(gain * sample + v_gain * v, STEP_BITS)
        # frames = last + sample / residual_scale in [-1,1] units: pixels + sample * 127.5 / scale
        ratio = Fraction(cfg.residual_scale).limit_denominator(1 << 10) * 2 * (1 << SAMPLE_BITS)
        delta = round_div(sample * 255 * ratio.denominator, torch.tensor(ratio.numerator, device=sample.device))
        last = pixels[:, -3:].repeat(1, cfg.frames_per_call, 1, 1)
        out = (last + delta).clamp_(0, 255)[..., :h, :w]
        return out.reshape(cfg.frames_per_call, 3, h, w).permute(0, 2, 3, 1).to("cpu", torch.uint8).contiguous()

    # -- files ---------------------------------------------------------------------------------
    @staticmethod
    def save(path: Path, config: DiffusionConfig, model: IntUNetModel, extra: dict | None = None) -> bytes:
        """Write the integers and the float model's config; returns the file's sha256."""
        cfg = asdict(config)
        cfg["channel_mults"] = list(config.channel_mults)
        return write_model_blob(path, {"format": MODEL_FORMAT, "config": cfg, "model": model.to_file(),
                                       "extra": extra or {}})

    @classmethod
    def from_bytes(cls, data: bytes, model_id: int, device: str = "cpu") -> "IntDiffusionPredictor":
        blob = read_model_blob(data, MODEL_FORMAT, "integer predictor model")
        cfg = dict(blob["config"])
        cfg["channel_mults"] = tuple(cfg["channel_mults"])
        return cls(DiffusionConfig(**cfg), IntUNetModel.from_file(blob["model"]), hashlib.sha256(data).digest(),
                   model_id, device)


@lru_cache(maxsize=None)
def load_int_diffusion(path: str, model_id: int, device: str) -> IntDiffusionPredictor:
    """A model file, loaded once per process and device."""
    return IntDiffusionPredictor.from_bytes(Path(path).read_bytes(), model_id, device)


@register_predictor(8, "diffusion-int", "diffusion-unet-int", weight_file=WEIGHT_FILE, encodable=True,
                    bit_exact=True, summary="the shipped conditional video diffusion model (the paper's method) "
                    "in integer arithmetic: the same frames on any hardware")
def build(weights: str | None, frames_per_call: int, device: str) -> IntDiffusionPredictor:
    """F comes from the model file."""
    if weights is None:
        raise ValueError("the integer diffusion predictor needs its model file")
    return load_int_diffusion(weights, 8, device)
