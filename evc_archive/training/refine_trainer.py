"""Training of the refine-diffusion model (core.refine) on the loop contexts of
training.refine_data: x0-prediction from x_t of a cosine schedule at the sampler's times (MSE),
plus LPIPS of the frame the estimate makes (the few-step sampler's output is an x0 estimate), with
EMA weights checkpointed as a model file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from evc_archive.core.ddim import add_noise
from evc_archive.core.refine import RefineConfig, RefineNet, Refiner
from evc_archive.training.ema import train_with_ema
from evc_archive.training.log import TrainingLog
from evc_archive.training.parallel import Workers, local_workers
from evc_archive.training.refine_data import RefineContexts

# the times the sampler visits with 1 to 4 steps (core.refine.sample_times), t = 1 and 1/2 twice: the
# model is trained where it is used (a few-step sampler never asks about other times)
SAMPLER_TIMES = (1.0, 1.0, 0.75, 2 / 3, 0.5, 0.5, 1 / 3, 0.25)


@dataclass(frozen=True)
class RefineTrainConfig:
    steps: int = 20000
    batch: int = 16
    crop: int = 64
    lr: float = 5e-4
    lpips_weight: float = 0.5
    ema: float = 0.999
    minutes: float | None = None
    checkpoint_seconds: float = 60.0
    seed: int = 0


def refine_loss(net: torch.nn.Module, condition: torch.Tensor, target: torch.Tensor, model_cfg: RefineConfig,
                cfg: RefineTrainConfig, gen: torch.Generator, lpips) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """condition (B,3(1+K),S,S) (the base frame first), target (B,3,S,S) in [-1,1] -> (scalar loss,
    its parts, detached)."""
    base = condition[:, :3]
    x0 = model_cfg.residual_scale * (target - base)
    times = torch.tensor(SAMPLER_TIMES)
    t = times[torch.randint(len(times), (base.shape[0],), generator=gen)].to(base.device)
    noise = torch.randn(x0.shape, generator=gen).to(base.device)
    x_t, _ = add_noise(x0, noise, t)
    estimate = net(condition, x_t, t)
    mse = (estimate - x0).square().mean()
    loss, parts = mse, {"x0_mse": mse.detach()}
    if lpips is not None and cfg.lpips_weight > 0:
        frame = (base + estimate / model_cfg.residual_scale).clamp(-1, 1)
        lp = lpips.loss(frame, target).mean()
        loss = loss + cfg.lpips_weight * lp
        parts["lpips"] = lp.detach()
    return loss, parts


def train_refine(contexts: RefineContexts, model_cfg: RefineConfig, cfg: RefineTrainConfig, out_path: Path,
                 base_model: bytes, log: TrainingLog, lpips, device: str = "cpu", init: RefineNet | None = None,
                 workers: Workers | None = None) -> RefineNet:
    """Train (from `init` when given); the EMA weights go to out_path as it runs, with `base_model`
    (the restoration model file the contexts' base frames were made with). With Ray Train
    `workers`, each worker samples its own batches and DDP averages the gradients."""
    workers = workers or local_workers(device)

    def batch_loss(model: torch.nn.Module, gen: torch.Generator):
        condition, target = contexts.sample(cfg.batch, cfg.crop, model_cfg.context_frames, gen)
        return refine_loss(model, condition.to(device), target.to(device), model_cfg, cfg, gen, lpips)

    def save(ema: torch.nn.Module, step: int) -> None:
        Refiner.save(out_path, model_cfg, ema, base_model,
                     extra={"step": step, "seconds": log.seconds})

    return train_with_ema(lambda: init if init is not None else RefineNet(model_cfg), batch_loss, save, cfg, log, workers)
