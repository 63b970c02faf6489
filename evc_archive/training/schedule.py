"""Learning-rate schedule driven by progress, so a run cut short by its time budget still anneals."""

from __future__ import annotations

import math
import time


class ProgressSchedule:
    """Linear warm-up then cosine decay to 5 %, over progress = max(step/steps, elapsed/budget)."""

    def __init__(self, optimizer, base_lr: float, steps: int, minutes: float | None, warmup: float = 0.03):
        self.optimizer, self.base_lr, self.steps, self.warmup = optimizer, base_lr, steps, warmup
        self.budget = minutes * 60 if minutes else math.inf
        self.start = time.monotonic()

    def progress(self, step: int) -> float:
        return min(1.0, max(step / self.steps, (time.monotonic() - self.start) / self.budget))

    def done(self, step: int) -> bool:
        return self.progress(step) >= 1.0

    def update(self, step: int) -> float:
        p = self.progress(step)
        if p < self.warmup:
            lr = self.base_lr * max(p / self.warmup, 0.01)
        else:
            q = (p - self.warmup) / (1 - self.warmup)
            lr = self.base_lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * q)))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr
