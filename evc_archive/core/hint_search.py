"""How the encoder picks one predictor call's hint (encoder only: the stream carries the pick, the
decoder never searches). `EncoderSettings.search` names the policy:

- "exhaustive": every candidate the predictor offers (`hint_candidates`, its motion measured from
  the decoded last frame to each target) is generated and scored.
- "fast" (the product's default; "quick" shares it): the motion-hint kinds take their velocities
  from one motion estimate of the segment's source (`SourceMotion`: the global shift between
  consecutive source frames, measured once and chained); restore-hint picks its velocity by the
  least luma error of the restored frame moved by it, then its mode (restored / as decoded /
  halfway) by the LPIPS of the call's first FAST_MODE_FRAMES frames at that velocity (the winner's other frames are scored
  after): 3 + 3 LPIPS-scored frames a call instead of 3 x 4, where the exhaustive policy scores up
  to 3 x 6 candidates on every frame. On the six validation clips at 128x128 against scoring every
  frame: 15 of 18 choices the same, mean LPIPS 0.1474 / 0.1185 / 0.0705 against 0.1474 / 0.1185 /
  0.0704 at 0.02 / 0.03 / 0.05 bpp, in 9-18 % less search time (docs/benchmarks/fast_search.md).
  Kinds without hints have one candidate either way.

Among the LPIPS-scored candidates either policy keeps the lowest mean LPIPS (over the frames it
scores) plus the kind's `hint_byte_weight` per hint byte (ties: the earliest). No choice depends
on the LPIPS threshold, so rate control can share predictor calls between settings.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from evc_archive.core.motion import luma
from evc_archive.core.predictors.motion_hint import GlobalMotionPredictor, global_shift
from evc_archive.core.predictors.restore_hint import RESTORED, RestoreHintPredictor, pack_hint
from evc_archive.core.settings import SEARCHES

FAST_MODE_FRAMES = 1  # fast policy: restore-hint's mode is chosen on the call's first frame


class SourceMotion:
    """Global motion of one segment's source frames (n,H,W,3) uint8, measured lazily, once per
    consecutive pair: shift(k) (dy, dx) px such that frame k+1 ~ frame k moved by it."""

    def __init__(self, source: torch.Tensor, search: int):
        self.source, self.search = source, search
        self._steps: dict[int, tuple[float, float]] = {}

    def step(self, k: int) -> tuple[float, float]:
        if k not in self._steps:
            self._steps[k] = global_shift(self.source[k].numpy(), self.source[k + 1].numpy(), self.search)
        return self._steps[k]

    def shifts(self, start: int, m: int) -> dict[int, tuple[float, float]]:
        """{d: (dy, dx)} for d = 1..m: the chained shift from source frame start - 1 to start - 1 + d."""
        out, total = {}, np.zeros(2)
        for d in range(1, m + 1):
            total = total + self.step(start - 2 + d)
            out[d] = (float(total[0]), float(total[1]))
        return out


def luma_error(frames: torch.Tensor, targets: torch.Tensor) -> int:
    """Sum of absolute luma differences (integer) of (m,H,W,3) uint8 frames to their targets."""
    return int(sum(np.abs(luma(f.numpy()) - luma(t.numpy())).sum() for f, t in zip(frames, targets)))


def _argmin(candidates: list[bytes], cost: Callable[..., float]) -> bytes:
    best, best_cost = None, 0.0
    for hint in candidates:
        c = cost(hint)
        if best is None or c < best_cost:
            best, best_cost = hint, c
    if best is None:
        raise ValueError("the predictor offered no hint candidates")
    return best


class HintSearch:
    """One segment's hint policy: `choose(predictor, context, start, cost)` -> the hint for the
    call whose targets are source frames start .. start + F - 1 (fewer at the segment's end).
    cost(hint, frames=None): the candidate's mean LPIPS over its first `frames` frames (all when
    None) plus its hint bytes' weight. `mode_frames`: the fast policy scores restore-hint's modes on
    that many first frames (None: all)."""

    def __init__(self, policy: str, source: torch.Tensor, mode_frames: int | None = FAST_MODE_FRAMES):
        if policy not in SEARCHES:
            raise ValueError(f"search {policy!r} is unknown: choose one of {', '.join(SEARCHES)}")
        self.policy, self.source, self.mode_frames = policy, source, mode_frames
        self._motion: SourceMotion | None = None

    def _source_motion(self, motion: GlobalMotionPredictor) -> SourceMotion:
        if self._motion is None:
            self._motion = SourceMotion(self.source, motion.search)
        return self._motion

    def choose(self, predictor, context: torch.Tensor, start: int, cost: Callable[..., float]) -> bytes:
        targets = self.source[start:start + predictor.frames_per_call]
        if self.policy == "exhaustive" or start == 0:
            return _argmin(predictor.hint_candidates(context, targets), cost)
        restore_hint = getattr(predictor, "base_predictor", predictor)  # a kind built on restore-hint wraps its hints
        if isinstance(restore_hint, RestoreHintPredictor):
            wrap = getattr(predictor, "wrap_base_hint", lambda hint: hint)
            shifts = self._source_motion(restore_hint.motion).shifts(start, len(targets))
            velocities = restore_hint.motion.hint_candidates(context, targets, shifts)
            base = restore_hint.base_frame(context, RESTORED)
            velocity = velocities[0] if len(velocities) == 1 else min(
                velocities, key=lambda v: luma_error(restore_hint.motion.predict(base, v, 0, 1)[:len(targets)], targets))
            return _argmin([wrap(pack_hint(mode, velocity)) for mode in restore_hint.kind.modes],
                           lambda hint: cost(hint, self.mode_frames))
        if isinstance(predictor, GlobalMotionPredictor):
            shifts = self._source_motion(predictor).shifts(start, len(targets))
            return _argmin(predictor.hint_candidates(context, targets, shifts), cost)
        return _argmin(predictor.hint_candidates(context, targets), cost)
