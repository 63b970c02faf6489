"""Restore-hint predictors: the global-motion hint predictor (core.predictors.motion_hint) applied
to a learned restoration of the last decoded frame. Kind 7 (restore-hint-int, the product's
default) runs the integer restoration model (core.int_restore: the same bits on any hardware);
kind 6 (restore-hint, decode-only since 2026-12-07) the float model it is quantised from
(core.restore: its bits depend on the machine's convolution kernels).

The decoder's last frame is soft: the keyframe codec's blur and ringing at 0.02-0.07 bpp. Copying
it (copy-last, motion-hint) carries that blur into every generated frame, while the source's next
frames are sharp. This predictor first estimates the sharp frame (a small CNN trained on AV1 intra
decodes of training clips), then moves it by the encoder-chosen global velocity exactly as
motion-hint does, with a sharp sub-pixel filter (core.subpel, Lanczos-3: kinds 6 and 7) or bilinear
as motion-hint (kind 5, restore-hint-bilinear: decode-only). Where restoration does
not pay in full (frames coded at high quality, which it slightly over-sharpens, and residual-coded
frames), the encoder turns it off or to half strength for that call. The restoration model file is
the predictor's weights: the stream names it by hash like any model file.

Hint (bitstream version 2 hints, one per accepted call): empty = restored, still (the common case,
0 bytes); else one mode varint (0 = restored, 1 = as decoded, 2 = halfway: the rounded mean of
the two, kinds 6 and 7) followed by a motion-hint hint (empty = still, else its velocity). The
encoder offers each mode of each motion-hint candidate (kinds 6 and 7: velocities measured to every
target of the call and their least-squares fit) and keeps the lowest LPIPS (encoder.predict_call).

What the gain over copy-last is made of (restoring detail vs following motion) is measured in
docs/benchmarks/ablation.md and the model card (evc_archive/models/restore.md).

Shapes: context (k,H,W,3) uint8 -> (F,H,W,3) uint8.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from evc_archive.core import varint
from evc_archive.core.errors import BitstreamError
from evc_archive.core.predictors.motion_hint import GlobalMotionPredictor
from evc_archive.core.int_restore import IntRestorer
from evc_archive.core.registry import register_predictor
from evc_archive.core.restore import Restorer

RESTORED, AS_DECODED, HALFWAY = 0, 1, 2


WEIGHT_FILE = "restore.pt"  # the shipped float restoration model (evc_archive/models/restore.md)
INT_WEIGHT_FILE = "restore-int.pt"  # the same model quantised (evc_archive/models/restore.md)


@dataclass(frozen=True)
class RestoreHintKind:
    """What a restore-hint kind id fixes: how frames are moved (GlobalMotionPredictor.interpolation),
    the modes its hints may name, and (encoder only) whether every target's velocity is offered."""

    interpolation: str
    modes: tuple[int, ...]
    fit_every_target: bool
    integer: bool = False  # runs the integer restoration model (core.int_restore)


# the algorithm's parameters per kind id (their specs: register_predictor below and in restore_hint_bilinear)
KINDS = {5: RestoreHintKind("bilinear", (RESTORED, AS_DECODED), fit_every_target=False),
         6: RestoreHintKind("lanczos3", (RESTORED, AS_DECODED, HALFWAY), fit_every_target=True),
         7: RestoreHintKind("lanczos3", (RESTORED, AS_DECODED, HALFWAY), fit_every_target=True, integer=True)}


def pack_hint(mode: int, motion_hint: bytes) -> bytes:
    """(mode, motion-hint hint) -> restore-hint hint bytes (empty for restored + still)."""
    return b"" if mode == RESTORED and not motion_hint else varint.encode(mode) + motion_hint


def unpack_hint(hint: bytes, modes: tuple[int, ...] = KINDS[7].modes) -> tuple[int, bytes]:
    """restore-hint hint bytes -> (mode, motion-hint hint); `modes`: those the stream's kind has."""
    if not hint:
        return RESTORED, b""
    mode, pos = varint.decode(hint, 0)
    if mode not in modes:
        raise BitstreamError(f"restore-hint mode {mode} is unknown (damaged stream)")
    return mode, hint[pos:]


class RestoreHintPredictor:
    """Motion-hint over restore(last decoded frame). model_id 7 (integer model, Lanczos-3 moves, the
    default), 6 (float model, Lanczos-3) or 5 (float model, bilinear moves)."""

    context_frames = 1

    def __init__(self, restorer: Restorer | IntRestorer, frames_per_call: int = 4, model_id: int = 7):
        if model_id not in KINDS:
            raise ValueError(f"restore-hint kind {model_id} is unknown: choose one of {sorted(KINDS)}")
        kind = KINDS[model_id]
        if isinstance(restorer, IntRestorer) != kind.integer:
            raise ValueError(f"restore-hint kind {model_id} runs the {'integer' if kind.integer else 'float'} "
                             "restoration model")
        self.model_id, self.kind = model_id, kind
        self.restorer = restorer
        self.frames_per_call = frames_per_call
        self.motion = GlobalMotionPredictor(frames_per_call=frames_per_call, interpolation=kind.interpolation,
                                            fit_every_target=kind.fit_every_target)
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
        """Encoder only: each motion-hint candidate (measured on the decoded last frame) in each mode."""
        motion = self.motion.hint_candidates(context, targets)
        return [pack_hint(mode, m) for mode in self.kind.modes for m in motion]

    def base_frame(self, context: torch.Tensor, mode: int) -> torch.Tensor:
        """context (k,H,W,3) uint8 -> (1,H,W,3) uint8, the frame the call moves."""
        if mode == AS_DECODED:
            return context[-1:]
        restored = self.restored_last(context)
        if mode == RESTORED:
            return restored
        return ((restored.to(torch.int16) + context[-1:].to(torch.int16) + 1) // 2).to(torch.uint8)

    def predict(self, context: torch.Tensor, hint: bytes, seed: int, steps: int) -> torch.Tensor:
        """The hint's base frame (empty hint: the restored last frame) moved by its velocity."""
        mode, motion_hint = unpack_hint(hint, self.kind.modes)
        return self.motion.predict(self.base_frame(context, mode), motion_hint, seed, steps)


@lru_cache(maxsize=None)
def load_restorer(path: str, device: str, integer: bool) -> Restorer | IntRestorer:
    """A restoration model file (integer or float format), loaded once per process and device."""
    return (IntRestorer if integer else Restorer).load(Path(path), device)


def build_kind(kind_id: int, weights: str | None, frames_per_call: int, device: str) -> RestoreHintPredictor:
    if weights is None:
        raise ValueError("the restore-hint predictors need their restoration model file")
    return RestoreHintPredictor(load_restorer(weights, device, KINDS[kind_id].integer), frames_per_call, kind_id)


@register_predictor(7, "restore-hint-int", "restore-motion-hint-int", weight_file=INT_WEIGHT_FILE, takes_hints=True,
                    encodable=True, bit_exact=True, summary="motion-hint over the shipped learned restoration of "
                    "the last decoded frame (integer model: the same bits on any hardware), moved with a sharp "
                    "Lanczos-3 filter (the default)")
def build(weights: str | None, frames_per_call: int, device: str) -> RestoreHintPredictor:
    return build_kind(7, weights, frames_per_call, device)


@register_predictor(6, "restore-hint", "restore-motion-hint-lanczos", weight_file=WEIGHT_FILE, takes_hints=True,
                    summary="restore-hint-int with the float restoration model it is quantised from (its frames "
                    "depend on the machine's convolution kernels; decode-only since 2026-12-07: the integer model "
                    "is within 1 % of its LPIPS and decodes to the same bits everywhere)")
def build_float(weights: str | None, frames_per_call: int, device: str) -> RestoreHintPredictor:
    return build_kind(6, weights, frames_per_call, device)
