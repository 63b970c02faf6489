"""Copy-last-frame predictor (kind id 0): predicts that nothing moves. The reference every other
predictor must beat, and the test double of the loop."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from evc_archive.core.predictors.base import NO_HINT, repeat_last
from evc_archive.core.registry import register_predictor


@dataclass
class CopyLastFramePredictor:
    """Repeats the last decoded frame; no hints, no weights."""

    frames_per_call: int = 4
    model_id: int = 0
    context_frames: int = 1
    content_hash: bytes = hashlib.sha256(b"evc-archive/copy-last-frame").digest()

    def hint_candidates(self, context: torch.Tensor, targets: torch.Tensor) -> list[bytes]:
        return list(NO_HINT)

    def predict(self, context: torch.Tensor, hint: bytes, seed: int, steps: int) -> torch.Tensor:
        return repeat_last(context, self.frames_per_call)


@register_predictor(0, "copy-last", "copy-last-frame", encodable=True, bit_exact=True,
                    summary="repeats the last decoded frame (the reference)")
def build(weights: str | None, frames_per_call: int, device: str) -> CopyLastFramePredictor:
    return CopyLastFramePredictor(frames_per_call=frames_per_call)
