"""The paper's closed loop over one segment, written once for the encoder and for rate control.

Code the first frame; then let the predictor generate F frames from the last K frames the decoder
will have, accept them in order while LPIPS(generated, source) <= threshold, and code the first
rejected frame, restarting prediction from it. A rejected frame is coded either on its own (INTRA)
or, when `residual_quality` is set, as the residual against the frame the predictor generated for
it (RESIDUAL, core.residual), whichever `prefer_residual` picks; the decoder then makes that
predictor call too, so a hinted call's hint is recorded for it.

What the loop needs from outside comes through `LoopPieces`: the encoder computes each piece when
asked (encoder.DirectPieces), rate control caches them between settings (ratecontrol).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from evc_archive.core.bitstream import INTRA, RESIDUAL, CodedFrame, Segment

# Residual frames are coded this many quality levels above the segment's first frame: fixed
# settings use DEFAULT_RESIDUAL_LEVELS; rate control tries each of RESIDUAL_SEARCH per segment (None:
# every coded frame on its own, which is sometimes best). Measured on the held-out clips with the
# AV1 intra codec: docs/benchmarks/ablation.md and keyframe_levels_wide.md (AV1 levels are 2 CRF apart:
# 4 levels = 8 CRF).
DEFAULT_RESIDUAL_LEVELS = 4
RESIDUAL_SEARCH: tuple[int | None, ...] = (None, 0, 1, 2, 3)


def residual_search(residual_levels: int | None) -> tuple[int | None, ...]:
    """What rate control tries for a job whose settings have `residual_levels` (None: intra only)."""
    return (None,) if residual_levels is None else RESIDUAL_SEARCH


@dataclass(frozen=True)
class CodedPiece:
    """A coded frame candidate: its payload and what the decoder rebuilds from it.
    frame: (H,W,3) uint8; lpips, psnr: against the source frame."""

    payload: bytes
    frame: torch.Tensor
    lpips: float
    psnr: float


@dataclass(frozen=True)
class PredictionPiece:
    """One predictor call: frames[j] (H,W,3) uint8 for positions i+j, their LPIPS / PSNR to the
    source, and the hint the call needs (None for an unhinted predictor)."""

    frames: tuple[torch.Tensor, ...]
    lpips: tuple[float, ...]
    psnr: tuple[float, ...]
    hint: bytes | None


class LoopPieces(Protocol):
    frame_count: int
    context_frames: int

    def intra(self, i: int, quality: int) -> CodedPiece: ...

    def residual(self, i: int, quality: int, prediction: torch.Tensor) -> CodedPiece: ...

    def predict(self, context: torch.Tensor, i: int) -> PredictionPiece: ...


@dataclass(frozen=True)
class LoopTrace:
    """What the loop decided: the segment to write and the decoder's frames with their scores."""

    segment: Segment
    frames: tuple[torch.Tensor, ...]
    lpips: tuple[float, ...]
    psnr: tuple[float, ...]

    @property
    def reconstruction(self) -> torch.Tensor:
        """(n,H,W,3) uint8."""
        return torch.stack(self.frames)


def residual_quality_for(qualities: tuple[int, ...], quality: int, residual_levels: int | None) -> int | None:
    """The quality residual frames use: `residual_levels` steps above `quality` in the codec's
    ordered qualities (clamped at the top); None when residual coding is off."""
    if residual_levels is None:
        return None
    ordered = sorted(qualities)
    return ordered[min(ordered.index(quality) + residual_levels, len(ordered) - 1)]


def prefer_residual(residual: CodedPiece, intra: CodedPiece, threshold: float) -> bool:
    """Among the candidates that meet the threshold the cheaper; when neither does, the better."""
    residual_ok, intra_ok = residual.lpips <= threshold, intra.lpips <= threshold
    if residual_ok and intra_ok:
        return len(residual.payload) <= len(intra.payload)
    if residual_ok != intra_ok:
        return residual_ok
    return residual.lpips <= intra.lpips


def run_loop(pieces: LoopPieces, quality: int, threshold: float,
             residual_quality: int | None = None) -> LoopTrace:
    """One segment through the loop with these settings (pieces.frame_count frames)."""
    frames: list[torch.Tensor] = []
    lpips: list[float] = []
    psnr: list[float] = []
    coded: list[bool] = []
    payloads: list[CodedFrame] = []
    hints: list[bytes] = []
    pending: list[tuple[torch.Tensor, float, float]] = []
    pending_hint: bytes | None = None  # recorded once the decoder is known to make the call
    rejected: torch.Tensor | None = None  # the prediction of the frame about to be coded
    code_next, i = True, 0
    while i < pieces.frame_count:
        if code_next:
            piece = pieces.intra(i, quality)
            frame = CodedFrame(quality, piece.payload, INTRA)
            if rejected is not None and residual_quality is not None:
                candidate = pieces.residual(i, residual_quality, rejected)
                if prefer_residual(candidate, piece, threshold):
                    piece, frame = candidate, CodedFrame(residual_quality, candidate.payload, RESIDUAL)
                    if pending_hint is not None:
                        hints.append(pending_hint)
            frames.append(piece.frame)
            lpips.append(piece.lpips)
            psnr.append(piece.psnr)
            coded.append(True)
            payloads.append(frame)
            pending, pending_hint, rejected, code_next = [], None, None, False
            i += 1
            continue
        if not pending:
            call = pieces.predict(torch.stack(frames[-pieces.context_frames:]), i)
            pending, pending_hint = list(zip(call.frames, call.lpips, call.psnr)), call.hint
        candidate_frame, score, candidate_psnr = pending.pop(0)
        if score <= threshold:
            if pending_hint is not None:
                hints.append(pending_hint)
                pending_hint = None
            frames.append(candidate_frame)
            lpips.append(score)
            psnr.append(candidate_psnr)
            coded.append(False)
            i += 1
        else:
            rejected, code_next = candidate_frame, True
    return LoopTrace(Segment(tuple(coded), tuple(payloads), tuple(hints)), tuple(frames), tuple(lpips), tuple(psnr))
