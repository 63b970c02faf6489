"""Learning-rate schedule driven by progress, so a run cut short by its time budget still anneals."""

from __future__ import annotations

import math
import time
from typing import Callable


class ProgressSchedule:
    """Linear warm-up then cosine decay to 5 %, over progress = max(step/steps, elapsed/budget)."""

    def __init__(self, optimizer, base_lr: float, steps: int, minutes: float | None, warmup: float = 0.03,
                 agree: Callable[[float], float] = lambda p: p):
        self.optimizer, self.base_lr, self.steps, self.warmup = optimizer, base_lr, steps, warmup
        self.budget = minutes * 60 if minutes else math.inf
        self.start = time.monotonic()
        self.agree = agree  # data-parallel workers: the progress all ranks use (their max)

    def progress(self, step: int) -> float:
        return min(1.0, max(step / self.steps, (time.monotonic() - self.start) / self.budget))

    def step(self, step: int) -> tuple[float, bool]:
        """Set this step's learning rate; (lr, whether this is the last step), the same on every
        worker of a data-parallel run."""
        p = self.agree(self.progress(step))
        return self._set(p), p >= 1.0

    def _set(self, p: float) -> float:
        if p < self.warmup:
            lr = self.base_lr * max(p / self.warmup, 0.01)
        else:
            q = (p - self.warmup) / (1 - self.warmup)
            lr = self.base_lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * q)))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr
