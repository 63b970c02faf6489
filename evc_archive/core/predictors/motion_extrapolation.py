"""Motion-extrapolation predictor (kind id 2, decode-only): constant-velocity extrapolation of the
block motion between the last two decoded frames (core.motion), weightless and bit-exact on any
machine. It loses to copy-last in the loop (docs/benchmarks/ablation.md).

Shapes: context (k,H,W,3) uint8 -> (F,H,W,3) uint8. A single-frame context (segment start; the
loop pads by repeating it) has zero motion, so the first call after a coded frame copies it. The
seed and step count are ignored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch

from evc_archive.core.motion import MotionConfig, motion_field, warp
from evc_archive.core.predictors.base import NO_HINT, repeat_last
from evc_archive.core.registry import register_predictor


@dataclass
class MotionExtrapolationPredictor:
    """Constant-velocity extrapolation of block motion between the last two context frames."""

    frames_per_call: int = 4
    config: MotionConfig = field(default_factory=MotionConfig)
    model_id: int = 2
    context_frames: int = 2

    @property
    def content_hash(self) -> bytes:
        return hashlib.sha256(self.config.key()).digest()

    def hint_candidates(self, context: torch.Tensor, targets: torch.Tensor) -> list[bytes]:
        return list(NO_HINT)

    def predict(self, context: torch.Tensor, hint: bytes, seed: int, steps: int) -> torch.Tensor:
        frames = context.numpy()
        last = frames[-1]
        if frames.shape[0] < 2 or np.array_equal(frames[-2], last):
            return repeat_last(context, self.frames_per_call)
        v = motion_field(frames[-2], last, self.config)
        out = [warp(last, v * j) for j in range(1, self.frames_per_call + 1)]
        return torch.from_numpy(np.stack(out))


@register_predictor(2, "motion", "motion-extrapolation", bit_exact=True,
                    summary="extrapolates block motion of the last two decoded frames")
def build(weights: str | None, frames_per_call: int, device: str) -> MotionExtrapolationPredictor:
    return MotionExtrapolationPredictor(frames_per_call=frames_per_call)
