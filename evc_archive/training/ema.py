"""The optimiser step every training loop here takes: backward, gradient clipping, the progress
schedule's learning rate, AdamW, then the EMA copy of the weights (the copy that is shipped); and
the whole loop of the trainers whose step is one loss on one sampled batch (`train_with_ema`)."""

from __future__ import annotations

import copy
from typing import Callable

import torch

from evc_archive.training.log import CheckpointClock, TrainingLog
from evc_archive.training.parallel import Workers
from evc_archive.training.schedule import ProgressSchedule


def ema_copy(net: torch.nn.Module) -> torch.nn.Module:
    """A frozen copy of net in eval mode, to be moved towards net by `step_with_ema`."""
    ema = copy.deepcopy(net).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    return ema


def step_with_ema(loss: torch.Tensor, net: torch.nn.Module, ema: torch.nn.Module, opt: torch.optim.Optimizer,
                  sched: ProgressSchedule, step: int, ema_decay: float, clip: float = 1.0) -> tuple[float, bool]:
    """One optimiser step on `loss` (net's parameters; DDP has already averaged the gradients when
    net is wrapped), then ema <- lerp(ema, net) with warm-up min(ema_decay, (1+step)/(10+step)).
    Returns the schedule's (lr, whether this is the last step)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
    lr, finished = sched.step(step)
    opt.step()
    decay = min(ema_decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for pe, p in zip(ema.parameters(), net.parameters()):
            pe.lerp_(p, 1 - decay)
    return lr, finished


def train_with_ema(make_net: Callable[[], torch.nn.Module], batch_loss: Callable,
                   save: Callable[[torch.nn.Module, int], None], cfg, log: TrainingLog, workers: Workers) -> torch.nn.Module:
    """Train make_net() (built after seeding torch with cfg.seed, on the workers' device) for
    cfg.steps (or cfg.minutes) with AdamW at cfg.lr on the
    progress schedule, its EMA (cfg.ema) saved by save(ema, step) every cfg.checkpoint_seconds and
    at the end; returns the EMA copy. batch_loss(model, gen) -> (scalar loss, its parts) samples its
    batch with `gen` (seeded from cfg.seed and the worker's rank) and runs `model` (DDP-wrapped on
    Ray Train workers, which then average the gradients)."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed + 7919 * workers.rank)
    net = make_net().to(workers.device).train()
    for p in net.parameters():
        p.requires_grad_(True)
    ema = ema_copy(net)
    model = workers.wrap(net)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = ProgressSchedule(opt, cfg.lr, cfg.steps, cfg.minutes, agree=workers.agree_max)
    clock = CheckpointClock(cfg.checkpoint_seconds)
    for step in range(1, cfg.steps + 1):
        loss, parts = batch_loss(model, gen)
        lr, finished = step_with_ema(loss, net, ema, opt, sched, step, cfg.ema)
        if workers.is_chief and log.due(step):
            log.write(step, loss=loss.detach(), lr=lr, **parts)
        if workers.is_chief and clock.due(finished):
            save(ema, step)
        if finished:
            break
    workers.check_in_sync(net)
    return ema
