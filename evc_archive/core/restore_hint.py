"""Restore-hint predictor (kind id 5): the global-motion hint predictor (core.motion_hint) applied
to a learned restoration of the last decoded frame (core.restore).

The decoder's last frame is soft: the keyframe codec's blur and ringing at 0.02-0.07 bpp. Copying
it (copy-last, motion-hint) carries that blur into every generated frame, while the source's next
frames are sharp. This predictor first estimates the sharp frame (a small CNN trained on AV1 intra
decodes of training clips), then moves it by the encoder-chosen global velocity exactly as
motion-hint does (same warp). Where restoration does not pay (frames coded at high quality, which
it slightly over-sharpens), the encoder turns it off for that call. The restoration model file is
the predictor's weights: the stream names it by hash like any model file.

Hint (bitstream version 2 hints, one per accepted call): empty = restored, still (the common case,
0 bytes); else one mode varint (0 = restored, 1 = as decoded) followed by a motion-hint hint
(empty = still, else its velocity). The encoder offers restored and as-decoded versions of each
motion-hint candidate and keeps the lowest LPIPS (encoder.predict_call).

What the gain over copy-last is made of (restoring detail vs following motion) is measured in
docs/benchmarks/ablation.md and the model card (evc_archive/models/restore.md).

Shapes: context (k,H,W,3) uint8 -> (F,H,W,3) uint8.
"""

from __future__ import annotations

import torch

from evc_archive.core import varint
from evc_archive.core.errors import BitstreamError
from evc_archive.core.motion_hint import GlobalMotionPredictor
from evc_archive.core.restore import Restorer

RESTORED, AS_DECODED = 0, 1


def pack_hint(mode: int, motion_hint: bytes) -> bytes:
    """(mode, motion-hint hint) -> restore-hint hint bytes (empty for restored + still)."""
    return b"" if mode == RESTORED and not motion_hint else varint.encode(mode) + motion_hint


def unpack_hint(hint: bytes) -> tuple[int, bytes]:
    """restore-hint hint bytes -> (mode, motion-hint hint)."""
    if not hint:
        return RESTORED, b""
    mode, pos = varint.decode(hint, 0)
    if mode not in (RESTORED, AS_DECODED):
        raise BitstreamError(f"restore-hint mode {mode} is unknown (damaged stream)")
    return mode, hint[pos:]


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
        """Encoder only: each motion-hint candidate (measured on the decoded last frame), restored and
        as decoded."""
        motion = self.motion.hint_candidates(context, targets)
        return [pack_hint(mode, m) for mode in (RESTORED, AS_DECODED) for m in motion]

    def predict_hinted(self, context: torch.Tensor, hint: bytes) -> torch.Tensor:
        mode, motion_hint = unpack_hint(hint)
        base = self.restored_last(context) if mode == RESTORED else context[-1:]
        return self.motion.predict_hinted(base, motion_hint)

    def predict(self, context: torch.Tensor, seed: int, steps: int) -> torch.Tensor:
        """Without a hint: the restored last frame, still."""
        return self.predict_hinted(context, b"")
