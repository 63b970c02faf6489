"""Restore-hint predictor (kind id 5): the global-motion hint predictor (core.motion_hint) applied
to a learned restoration of the last decoded frame (core.restore).

The decoder's last frame is soft: the keyframe codec's blur and ringing at 0.02-0.07 bpp. Copying
it (copy-last, motion-hint) carries that blur into every generated frame, while the source's next
frames are sharp. This predictor first estimates the sharp frame (a small CNN trained on AV1 intra
decodes of training clips), then moves it by the encoder-chosen global velocity exactly as
motion-hint does (same hint bytes, same warp). The restoration model file is the predictor's
weights: the stream names it by hash like any model file.

What the gain over copy-last is made of (restoring detail vs following motion) is measured in
docs/benchmarks/ablation.md and the model card (evc_archive/models/restore.md).

Shapes: context (k,H,W,3) uint8 -> (F,H,W,3) uint8.
"""

from __future__ import annotations

import torch

from evc_archive.core.motion_hint import GlobalMotionPredictor
from evc_archive.core.restore import Restorer


class RestoreHintPredictor:
    """A HintedPredictor: motion-hint over restore(last decoded frame)."""

    model_id = 5
    context_frames = 1
    uses_hints = True

    def __init__(self, restorer: Restorer, frames_per_call: int = 4):
        self.restorer = restorer
        self.frames_per_call = frames_per_call
        self.motion = GlobalMotionPredictor(frames_per_call=frames_per_call)
        self.content_hash = restorer.content_hash  # the weights file; the algorithm is the kind
        self._memo: tuple[bytes, torch.Tensor] | None = None  # the encoder asks for one context often

    def restored_last(self, context: torch.Tensor) -> torch.Tensor:
        """context (k,H,W,3) uint8 -> (1,H,W,3) uint8, the restored last frame."""
        last = context[-1:].contiguous()
        key = last.numpy().tobytes()
        if self._memo is None or self._memo[0] != key:
            self._memo = (key, self.restorer(last))
        return self._memo[1]

    def hint_candidates(self, context: torch.Tensor, targets: torch.Tensor) -> list[bytes]:
        """Encoder only: the motion-hint candidates, measured from the restored last frame."""
        return self.motion.hint_candidates(self.restored_last(context), targets)

    def predict_hinted(self, context: torch.Tensor, hint: bytes) -> torch.Tensor:
        return self.motion.predict_hinted(self.restored_last(context), hint)

    def predict(self, context: torch.Tensor, seed: int, steps: int) -> torch.Tensor:
        """Without a hint: the restored last frame, still."""
        return self.predict_hinted(context, b"")
