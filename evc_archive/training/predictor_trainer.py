"""Training of the diffusion predictor: v-prediction on the residual of the next F frames against
the last context frame, conditioned on K frames (real clips mixed with synthetic video)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from evc_archive.core.ddim import add_noise
from evc_archive.core.predictors.diffusion import DiffusionConfig, DiffusionPredictor
from evc_archive.core.unet import ConditionalUNet
from evc_archive.training.data import FrameDataset, camera_path, moving_digits
from evc_archive.training.ema import train_with_ema
from evc_archive.training.log import TrainingLog
from evc_archive.training.parallel import Workers, local_workers


@dataclass(frozen=True)
class PredictorTrainConfig:
    steps: int = 20000
    batch: int = 16
    crop: int = 128
    lr: float = 3e-4
    synthetic_fraction: float = 0.3  # half moving digits, half camera paths over stills
    context_drop: float = 0.2  # P(context = the last frame repeated): the segment-start case
    degrade_context: float = 0.5  # P(context blurred by down/up-sampling): decoded frames are soft
    ema: float = 0.999
    minutes: float | None = None
    checkpoint_seconds: float = 60.0
    seed: int = 0


def sample_batch(dataset: FrameDataset, cfg: PredictorTrainConfig, length: int, gen: torch.Generator) -> torch.Tensor:
    """(B,length,3,crop,crop) in [0,1]: real clips plus synthetic video."""
    n_syn = int(round(cfg.batch * cfg.synthetic_fraction))
    n_digits = n_syn // 2
    parts = [dataset.random_sequences(cfg.batch - n_syn, length, cfg.crop, gen)]
    if n_digits:
        parts.append(moving_digits(n_digits, length, cfg.crop, gen).to(parts[0].device))
    if n_syn - n_digits:
        parts.append(camera_path(dataset.stills, n_syn - n_digits, length, cfg.crop, gen).to(parts[0].device))
    return torch.cat(parts)


def degrade(frames: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """(B,C,H,W) -> the same, low-passed by a random factor (2 to 4), as coded frames are."""
    factor = float(2 + 2 * torch.rand(1, generator=gen))
    h, w = frames.shape[-2:]
    small = F.interpolate(frames, scale_factor=1 / factor, mode="area")
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)


def predictor_loss(unet: ConditionalUNet, video: torch.Tensor, model_cfg: DiffusionConfig,
                   cfg: PredictorTrainConfig, gen: torch.Generator) -> torch.Tensor:
    """video (B,K+F,3,H,W) in [0,1] -> scalar v-prediction MSE."""
    k, f = model_cfg.context_frames, model_cfg.frames_per_call
    b = video.shape[0]
    x = video * 2 - 1
    context, future = x[:, :k].clone(), x[:, k:k + f]
    drop = (torch.rand(b, generator=gen) < cfg.context_drop).to(x.device)
    if drop.any():
        context[drop] = context[drop, -1:].expand(-1, k, -1, -1, -1)
    blur = (torch.rand(b, generator=gen) < cfg.degrade_context).to(x.device)
    if blur.any():
        flat = context[blur].flatten(0, 1)
        context[blur] = degrade(flat, gen).reshape(int(blur.sum()), k, *flat.shape[1:])
    last = context[:, -1:]
    x0 = model_cfg.residual_scale * (future - last)
    x0 = x0.flatten(1, 2)
    noise = torch.randn(x0.shape, generator=gen).to(x0.device)
    t = torch.rand(b, generator=gen).to(x0.device)
    x_t, v = add_noise(x0, noise, t)
    pred = unet(context.flatten(1, 2), x_t, t)
    return F.mse_loss(pred, v)


def train_predictor(dataset: FrameDataset, model_cfg: DiffusionConfig, cfg: PredictorTrainConfig,
                    out_path: Path, log: TrainingLog, device: str = "cpu",
                    init: ConditionalUNet | None = None, workers: Workers | None = None) -> ConditionalUNet:
    """Train (from `init` when given); the EMA weights are checkpointed to out_path (predictor
    model file) as it runs. With `workers` from Ray Train, each worker samples its own clips and
    DDP averages the gradients; the chief logs and checkpoints."""
    workers = workers or local_workers(device)
    length = model_cfg.context_frames + model_cfg.frames_per_call

    def batch_loss(net: torch.nn.Module, gen: torch.Generator):
        return predictor_loss(net, sample_batch(dataset, cfg, length, gen).to(device), model_cfg, cfg, gen), {}

    def save(ema: torch.nn.Module, step: int) -> None:
        DiffusionPredictor.save(out_path, model_cfg, ema, extra={"step": step, "seconds": log.seconds})

    return train_with_ema(lambda: init if init is not None else DiffusionPredictor.build_unet(model_cfg), batch_loss,
                          save, cfg, log, workers)
