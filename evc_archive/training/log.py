"""Training logs: one JSON line per logged step, and the loss-curve PNG for the model card."""

from __future__ import annotations

import json
import time
from pathlib import Path


class CheckpointClock:
    """When a time-driven checkpoint is due: `seconds` after the last one, and at the last step."""

    def __init__(self, seconds: float):
        self.seconds, self.last = seconds, time.monotonic()

    def due(self, finished: bool) -> bool:
        now = time.monotonic()
        if finished or now - self.last > self.seconds:
            self.last = now
            return True
        return False


class TrainingLog:
    """Appends {"step", "seconds", **metrics} lines to a .jsonl file (nothing when not enabled:
    the non-chief workers of a data-parallel run)."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = Path(path), enabled
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("")
        self.start = time.monotonic()

    @staticmethod
    def due(step: int, every: int = 50) -> bool:
        """Whether step is one the training loops log (the first, then every `every`)."""
        return step == 1 or step % every == 0

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.start

    def write(self, step: int, **metrics: float) -> None:
        if not self.enabled:
            return
        row = {"step": step, "seconds": round(self.seconds, 2), **{k: float(v) for k, v in metrics.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_loss_curves(logs: dict[str, Path], key: str, out_png: Path, title: str) -> None:
    """One curve per log (label -> .jsonl path) of metric `key` against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    for label, path in logs.items():
        rows = [r for r in read_log(path) if key in r]
        ax.plot([r["step"] for r in rows], [r[key] for r in rows], label=label, linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
