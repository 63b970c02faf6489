"""Training of the restoration model (core.restore): decoded -> source on the pairs of
training.restore_data, L1 plus LPIPS, with EMA weights checkpointed as a restoration model file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from evc_archive.core.restore import RestoreConfig, RestoreNet, Restorer
from evc_archive.training.ema import ema_copy, step_with_ema
from evc_archive.training.log import CheckpointClock, TrainingLog
from evc_archive.training.parallel import Workers, local_workers
from evc_archive.training.restore_data import RestorePairs
from evc_archive.training.schedule import ProgressSchedule


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
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed + 7919 * workers.rank)
    net = (init if init is not None else RestoreNet(model_cfg)).to(device).train()
    for p in net.parameters():
        p.requires_grad_(True)
    ema = ema_copy(net)
    model = workers.wrap(net)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = ProgressSchedule(opt, cfg.lr, cfg.steps, cfg.minutes, agree=workers.agree_max)
    clock = CheckpointClock(cfg.checkpoint_seconds)
    for step in range(1, cfg.steps + 1):
        inputs, targets = pairs.sample(cfg.batch, cfg.crop, cfg.identity_fraction, gen, cfg.digit_fraction)
        loss, parts = restore_loss(model, inputs.to(device), targets.to(device), cfg, lpips)
        lr, finished = step_with_ema(loss, net, ema, opt, sched, step, cfg.ema)
        if workers.is_chief and log.due(step):
            log.write(step, loss=loss.detach(), lr=lr, **parts)
        if workers.is_chief and clock.due(finished):
            Restorer.save(out_path, model_cfg, ema, extra={"step": step, "seconds": log.seconds})
        if finished:
            break
    workers.check_in_sync(net)
    return ema
