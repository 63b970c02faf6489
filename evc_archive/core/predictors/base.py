"""The predictor contract: K decoded frames in, the next F frames out, steered by an optional hint.

Every predictor answers the same two calls, so the encoder and decoder treat all kinds alike:
- `hint_candidates(context, targets)`: encoder only, the hints to try for one call (a single empty
  hint for kinds without hints, whose spec says `takes_hints=False`; the stream then carries none);
- `predict(context, hint, seed, steps)`: the call's frames, deterministic given its inputs (kinds
  ignore what they do not use: hints, or the seed and step count).
A kind may also offer `encoder_variants(context, hint, targets, seed, steps)` (encoder only: other
hints for the call the hint search picked, which need the seed, e.g. refine-diffusion's steered
noises; core.encoder.predict_call keeps the cheapest).

Frames are uint8 RGB tensors (H,W,3). A context shorter than K (segment start) is left-padded by
repeating its first frame, so a segment needs only one coded frame before prediction starts.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

import torch

NO_HINT = (b"",)  # the candidates of a kind without hints


class Predictor(Protocol):
    """What the encoder and decoder need of a predictor."""

    model_id: int  # the kind's frozen id (registry.PREDICTORS)
    content_hash: bytes  # sha256 of the weights file (of the algorithm's description, for weightless kinds)
    context_frames: int  # K
    frames_per_call: int  # F

    def hint_candidates(self, context: torch.Tensor, targets: torch.Tensor) -> list[bytes]:
        """Encoder only: context (k,H,W,3), the source's next frames targets (m,H,W,3) -> hints to try."""
        ...

    def predict(self, context: torch.Tensor, hint: bytes, seed: int, steps: int) -> torch.Tensor:
        """context (k,H,W,3) uint8 with 1 <= k -> (F,H,W,3) uint8."""
        ...


def derive_seed(base_seed: int, frame_index: int) -> int:
    """Platform-independent per-call seed from the stream seed and the first predicted frame index."""
    digest = hashlib.blake2b(f"{base_seed}:{frame_index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def take_context(context: torch.Tensor, k: int) -> torch.Tensor:
    """Last k frames of (n,H,W,3), left-padded with the first frame when n < k -> (k,H,W,3)."""
    context = context[-k:]
    if context.shape[0] < k:
        pad = context[:1].expand(k - context.shape[0], *context.shape[1:])
        context = torch.cat([pad, context], dim=0)
    return context


def repeat_last(context: torch.Tensor, frames_per_call: int) -> torch.Tensor:
    """context (k,H,W,3) -> (F,H,W,3): its last frame F times (a still prediction)."""
    return context[-1:].expand(frames_per_call, *context.shape[1:]).clone()
