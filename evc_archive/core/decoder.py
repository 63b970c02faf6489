"""The decoder: reads only the stream's bytes plus the models it names, and regenerates exactly the
frames the encoder saw (the same coded-frame decodes, the same predictor calls, the same seeds)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from evc_archive.core.bitstream import HASH_BYTES, RESIDUAL, Segment, Stream, StreamHeader, unpack
from evc_archive.core.errors import BitstreamError, ModelMismatchError
from evc_archive.core.gop_av1 import decode_gop
from evc_archive.core.keyframes.base import ImageCodec
from evc_archive.core.model_library import ModelLibrary
from evc_archive.core.predictors.base import Predictor, derive_seed
from evc_archive.core.registry import PREDICTORS
from evc_archive.core.residual import apply_residual


def decode_segment(segment: Segment, header: StreamHeader, codec: ImageCodec, predictor: Predictor,
                   first_frame: int = 0) -> torch.Tensor:
    """One segment -> (n,H,W,3) uint8. `first_frame` is the segment's index in the stream."""
    h, w = header.height, header.width
    if segment.inter is not None:
        return decode_gop(segment.inter.payload, segment.frame_count, h, w)
    recon: list[torch.Tensor] = []
    pending: list[torch.Tensor] = []
    payloads = iter(segment.frames)
    hinted = PREDICTORS.by_id(predictor.model_id).takes_hints
    hints = iter(segment.hints)

    def call(i: int) -> list[torch.Tensor]:
        context = torch.stack(recon[-predictor.context_frames:])
        hint = next(hints, None) if hinted else b""
        if hint is None:
            raise BitstreamError("segment has fewer predictor hints than predictor calls (damaged?)")
        return list(predictor.predict(context, hint, derive_seed(header.seed, first_frame + i), header.sampling_steps))

    for i, coded in enumerate(segment.coded):
        if coded:
            frame = next(payloads)
            if frame.quality not in codec.qualities:
                raise BitstreamError(f"stream asks for keyframe quality {frame.quality}, which its model lacks (damaged?)")
            decoded = codec.decode(frame.payload, frame.quality, h, w)
            if frame.mode == RESIDUAL:
                prediction = pending.pop(0) if pending else call(i)[0]
                decoded = apply_residual(prediction, decoded)
            recon.append(decoded)
            pending = []
            continue
        if not pending:
            pending = call(i)
        recon.append(pending.pop(0))
    if next(hints, None) is not None or (segment.hints and not hinted):
        raise BitstreamError("segment has more predictor hints than predictor calls (damaged?)")
    return torch.stack(recon)


@dataclass(frozen=True)
class OpenedStream:
    """A parsed stream with the models it needs, ready to decode segment by segment."""

    stream: Stream
    codec: ImageCodec
    predictor: Predictor

    @property
    def header(self) -> StreamHeader:
        return self.stream.header

    def segments(self) -> Iterator[torch.Tensor]:
        """Yields each segment's frames (n,H,W,3) uint8, in order."""
        position = 0
        for segment in self.stream.segments:
            yield decode_segment(segment, self.header, self.codec, self.predictor, position)
            position += segment.frame_count


def open_stream(data: bytes, library: ModelLibrary) -> OpenedStream:
    """Parse and check the stream, and resolve its models (clear errors for any mismatch)."""
    stream = unpack(data)
    h = stream.header
    codec = library.keyframe(h.keyframe_model_id, h.keyframe_hash)
    predictor = library.predictor(h.predictor_model_id, h.predictor_hash, h.frames_per_call)
    for model, want in ((codec, h.keyframe_hash), (predictor, h.predictor_hash)):
        if model.content_hash[:HASH_BYTES] != want:
            raise ModelMismatchError(f"model hash {model.content_hash[:HASH_BYTES].hex()} differs from the stream's {want.hex()}")
    if (predictor.context_frames, predictor.frames_per_call) != (h.context_frames, h.frames_per_call):
        raise ModelMismatchError(
            f"predictor settings differ: stream K={h.context_frames} F={h.frames_per_call}, "
            f"model K={predictor.context_frames} F={predictor.frames_per_call}")
    return OpenedStream(stream, codec, predictor)
