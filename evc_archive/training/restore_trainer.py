"""Training of the restoration model (core.restore): decoded -> source on the pairs of
training.restore_data, L1 plus LPIPS, with EMA weights checkpointed as a restoration model file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from evc_archive.core.restore import RestoreConfig, RestoreNet, Restorer
from evc_archive.training.ema import train_with_ema
from evc_archive.training.log import TrainingLog
from evc_archive.training.parallel import Workers, local_workers
from evc_archive.training.restore_data import RestorePairs


@dataclass(frozen=True)
class RestoreTrainConfig:
    steps: int = 20000
    batch: int = 32
    crop: int = 96
    lr: float = 5e-4
    l1_weight: float = 1.0
    lpips_weight: float = 1.0
    identity_fraction: float = 0.2  # clean -> clean: a frame that is already sharp passes through
    digit_fraction: float = 0.1
    ema: float = 0.999
    minutes: float | None = None
    checkpoint_seconds: float = 60.0
    seed: int = 0


def restore_loss(net: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, cfg: RestoreTrainConfig,
                 lpips) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """inputs, targets (B,3,S,S) in [-1,1] -> (scalar loss, its parts, detached)."""
    out = net(inputs)
    l1 = (out - targets).abs().mean()
    loss = cfg.l1_weight * l1
    parts = {"l1": l1.detach()}
    if lpips is not None and cfg.lpips_weight > 0:
        lp = lpips.loss(out.clamp(-1, 1), targets).mean()
        loss = loss + cfg.lpips_weight * lp
        parts["lpips"] = lp.detach()
    return loss, parts


def train_restore(pairs: RestorePairs, model_cfg: RestoreConfig, cfg: RestoreTrainConfig, out_path: Path,
                  log: TrainingLog, lpips, device: str = "cpu", init: RestoreNet | None = None,
                  workers: Workers | None = None) -> RestoreNet:
    """Train (from `init` when given); the EMA weights go to out_path as it runs. With Ray Train
    `workers`, each worker samples its own batches and DDP averages the gradients."""
    workers = workers or local_workers(device)

    def batch_loss(model: torch.nn.Module, gen: torch.Generator):
        inputs, targets = pairs.sample(cfg.batch, cfg.crop, cfg.identity_fraction, gen, cfg.digit_fraction)
        return restore_loss(model, inputs.to(device), targets.to(device), cfg, lpips)

    def save(ema: torch.nn.Module, step: int) -> None:
        Restorer.save(out_path, model_cfg, ema, extra={"step": step, "seconds": log.seconds})

    return train_with_ema(lambda: init if init is not None else RestoreNet(model_cfg), batch_loss, save, cfg, log, workers)
