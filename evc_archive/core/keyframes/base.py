"""The keyframe codec contract: a coded frame's payload and the one reconstruction both sides use."""

from __future__ import annotations

from typing import Protocol

import torch


class ImageCodec(Protocol):
    """What the encoder and decoder need of a keyframe codec (keyframes.hyperprior, id 1, whose model
    is core.hyperprior; keyframes.av1_intra, id 2). decode(encode(frame)) is the reconstruction both
    sides use."""

    model_id: int  # the codec's frozen id (registry.KEYFRAME_CODECS)
    content_hash: bytes  # sha256 of the model file (of the format description, for weightless codecs)

    @property
    def qualities(self) -> tuple[int, ...]: ...

    def encode(self, frame: torch.Tensor, quality: int) -> bytes:
        """frame (H,W,3) uint8 -> payload bytes."""
        ...

    def decode(self, payload: bytes, quality: int, height: int, width: int) -> torch.Tensor:
        """payload -> frame (height,width,3) uint8 on the CPU."""
        ...
