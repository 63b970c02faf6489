"""Block-motion-hint predictor (kind id 4, decode-only): copy-last-frame moved by a coarse motion
field the encoder measures on the source and sends as side information.

Per predictor call the stream carries one hint (bitstream version >= 2):
    empty          still (exactly copy-last-frame)
    01 dy dx       a global velocity, quarter pixels per frame, zigzag varints (as kind 3)
    02 map v...    a field on a grid of GRID x GRID-ish square blocks (side = ceil(long side / GRID)
                   pixels of the analysis image, core.motion.analysis_factor): a bitmap of the
                   blocks that move (row-major, bit i of byte i // 8), then per moving block its
                   velocity (dy, dx) in quarter pixels per frame as zigzag varints
Generated frame j (1..F) is the last decoded frame warped by j x the field, interpolated from block
centres (core.motion.dense_field) and applied with core.motion.warp (integer 1/16-pixel bilinear):
the same bits everywhere.

The encoder offers still, the two global candidates of kind 3 and two block fields (block matching
from the last decoded frame to the source's next frame, and to the call's last target frame divided
by its distance), and encoder.predict_call keeps the lowest mean LPIPS plus HINT_BYTE_WEIGHT per
hint byte, so a field is sent only where it buys more than it costs.

Shapes: context (k,H,W,3) uint8 -> (F,H,W,3) uint8.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from evc_archive.core import varint
from evc_archive.core.errors import BitstreamError
from evc_archive.core.motion import MotionConfig, analysis_factor, block_vectors, box_downscale, dense_field, luma, warp
from evc_archive.core.predictors.base import repeat_last
from evc_archive.core.predictors.motion_hint import (
    QUARTER,
    GlobalMotionPredictor,
    pack_velocity,
    unzigzag,
    velocity_hint,
    zigzag,
)
from evc_archive.core.registry import register_predictor

GRID = 4  # blocks along the long side
ANALYSIS_SIDE = 160
GLOBAL_SEARCH = GlobalMotionPredictor.search  # encoder only: kind 3's global search range
HINT_BYTE_WEIGHT = 0.0004  # LPIPS a hint byte must buy (encoder only; not part of the format)
GLOBAL, FIELD = 1, 2
FORMAT_KEY = (b"evc-archive/block-motion-hint/1:grid=4:side=160:zigzag-quarter-pel:bitmap:"
              b"dense-bilinear-centres:warp-1/16-bilinear-clamp")


def grid_shape(height: int, width: int) -> tuple[int, int, int, int]:
    """-> (analysis factor s, block side b in analysis pixels, blocks down, blocks across)."""
    s = analysis_factor(height, width, ANALYSIS_SIDE)
    h, w = -(-height // s), -(-width // s)
    b = max(1, -(-max(h, w) // GRID))
    return s, b, -(-h // b), -(-w // b)


def pack_field(velocities: np.ndarray) -> bytes:
    """(nby,nbx,2) int quarter-pixel velocities -> hint bytes (empty when all are zero)."""
    flat = velocities.reshape(-1, 2)
    moving = np.flatnonzero(np.any(flat != 0, axis=1))
    if len(moving) == 0:
        return b""
    bitmap = bytearray(-(-len(flat) // 8))
    for i in moving:
        bitmap[i // 8] |= 1 << (i % 8)
    out = bytearray([FIELD]) + bitmap
    for i in moving:
        out += varint.encode(zigzag(int(flat[i, 0]))) + varint.encode(zigzag(int(flat[i, 1])))
    return bytes(out)


def tagged_global(velocity: bytes) -> bytes:
    """A kind-3 velocity hint -> this kind's global hint (still stays empty)."""
    return bytes([GLOBAL]) + velocity if velocity else b""


def pack_global(dy: int, dx: int) -> bytes:
    return tagged_global(pack_velocity(dy, dx))


def unpack_hint(hint: bytes, nby: int, nbx: int) -> np.ndarray:
    """hint -> (nby,nbx,2) int64 quarter-pixel velocities; BitstreamError when malformed."""
    field = np.zeros((nby * nbx, 2), dtype=np.int64)
    if not hint:
        return field.reshape(nby, nbx, 2)
    kind, pos = hint[0], 1
    try:
        if kind == GLOBAL:
            zy, pos = varint.decode(hint, pos)
            zx, pos = varint.decode(hint, pos)
            field[:] = (unzigzag(zy), unzigzag(zx))
        elif kind == FIELD:
            n_map = -(-(nby * nbx) // 8)
            bitmap = hint[pos : pos + n_map]
            if len(bitmap) != n_map:
                raise BitstreamError("block motion hint ends early (damaged)")
            pos += n_map
            for i in range(nby * nbx):
                if bitmap[i // 8] >> (i % 8) & 1:
                    zy, pos = varint.decode(hint, pos)
                    zx, pos = varint.decode(hint, pos)
                    field[i] = (unzigzag(zy), unzigzag(zx))
        else:
            raise BitstreamError(f"block motion hint of unknown kind {kind} (damaged)")
    except (ValueError, IndexError):
        raise BitstreamError("block motion hint is malformed (damaged)") from None
    if pos != len(hint):
        raise BitstreamError("block motion hint has trailing bytes (damaged)")
    return field.reshape(nby, nbx, 2)


@dataclass
class BlockMotionHintPredictor:
    """Copy-last-frame plus an encoder-chosen global velocity or coarse block field per call."""

    frames_per_call: int = 4
    search: int = 8  # encoder's search range per frame of distance, analysis pixels
    model_id: int = 4
    context_frames: int = 1
    content_hash: bytes = hashlib.sha256(FORMAT_KEY).digest()

    def _field_candidate(self, last: np.ndarray, target: np.ndarray, distance: int) -> bytes:
        h, w, _ = last.shape
        s, b, nby, nbx = grid_shape(h, w)
        cfg = MotionConfig(block=b, search=min(self.search * distance, 2 * b), analysis_side=ANALYSIS_SIDE)
        shifts = block_vectors(box_downscale(luma(last), s), box_downscale(luma(target), s), cfg)[:nby, :nbx]
        return pack_field(np.round(shifts * s * QUARTER / distance).astype(np.int64))

    def hint_candidates(self, context: torch.Tensor, targets: torch.Tensor) -> list[bytes]:
        last, tg = context[-1].numpy(), targets.numpy()
        out = [b""]
        for m in sorted({1, len(tg)}):
            for hint in (tagged_global(velocity_hint(last, tg[m - 1], m, GLOBAL_SEARCH)),
                         self._field_candidate(last, tg[m - 1], m)):
                if hint not in out:
                    out.append(hint)
        return out

    def predict(self, context: torch.Tensor, hint: bytes, seed: int, steps: int) -> torch.Tensor:
        """The last frame warped by the hint's field (empty hint: still, copy-last-frame)."""
        last = context[-1]
        h, w, _ = last.shape
        s, b, nby, nbx = grid_shape(h, w)
        velocities = unpack_hint(hint, nby, nbx)
        if not velocities.any():
            return repeat_last(context, self.frames_per_call)
        per_frame = dense_field(velocities, h, w, b * s) / QUARTER  # exact: quarter-pixel multiples, then bilinear
        frame = last.numpy()
        return torch.from_numpy(np.stack([warp(frame, per_frame * j) for j in range(1, self.frames_per_call + 1)]))


@register_predictor(4, "block-hint", "block-motion-hint", takes_hints=True, bit_exact=True, hint_byte_weight=HINT_BYTE_WEIGHT,
                    summary="motion-hint with a coarse block motion field where it pays for its bytes")
def build(weights: str | None, frames_per_call: int, device: str) -> BlockMotionHintPredictor:
    return BlockMotionHintPredictor(frames_per_call=frames_per_call)
