"""The optimiser step every training loop here takes: backward, gradient clipping, the progress
schedule's learning rate, AdamW, then the EMA copy of the weights (the copy that is shipped)."""

from __future__ import annotations

import copy

import torch

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
