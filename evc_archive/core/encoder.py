"""The paper's sequential encoder, closed loop (core.loop holds the loop itself).

The encoder's reconstruction is, by construction, what `decoder.decode_segment` will produce: coded
frames go through the real decode path, and generated frames come from the same predictor calls
with the same seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterable

import torch

from evc_archive.core.bitstream import Segment, Stream, StreamHeader, pack
from evc_archive.core.gop_av1 import decode_gop, encode_gop
from evc_archive.core.hint_search import HintSearch
from evc_archive.core.keyframes.base import ImageCodec
from evc_archive.core.loop import CodedPiece, PredictionPiece, residual_quality_for, run_loop
from evc_archive.core.predictors.base import Predictor, derive_seed
from evc_archive.core.registry import PREDICTORS
from evc_archive.core.residual import apply_residual, residual_image
from evc_archive.core.settings import EncoderSettings
from evc_archive.core.source_scores import SourceScores


@dataclass(frozen=True)
class SegmentResult:
    """What encoding one segment gives: the coded segment and what the decoder will rebuild.

    reconstruction: (n,H,W,3) uint8; lpips, psnr: (n,) per frame against the source."""

    segment: Segment
    reconstruction: torch.Tensor
    lpips: torch.Tensor
    psnr: torch.Tensor


def predict_call(predictor: Predictor, scores: SourceScores, hints: HintSearch, context: torch.Tensor, seed: int,
                 steps: int, start: int) -> tuple[torch.Tensor, torch.Tensor, bytes | None]:
    """One predictor call as the encoder makes it, for the frames from `start` -> (frames (m,H,W,3)
    for the m <= F source frames left, their LPIPS (m,), the chosen hint or None for a kind without
    hints). The hint is `hints`' pick (core.hint_search: lowest mean LPIPS, over the frames its
    policy scores, plus the kind's `hint_byte_weight` per hint byte), then, for a kind with
    `encoder_variants` (refine-diffusion: steered noises, refinement off), the cheapest of it and
    those over all m frames; it does not depend on the threshold, so rate control can share it
    between settings."""
    spec = PREDICTORS.by_id(predictor.model_id)
    m = min(predictor.frames_per_call, scores.source.shape[0] - start)
    tried: dict[bytes, tuple[torch.Tensor, torch.Tensor]] = {}  # hint -> frames, LPIPS of its first k

    def lpips_of(hint: bytes, k: int) -> torch.Tensor:
        """The LPIPS (k,) of the hint's first k frames (each frame scored once)."""
        if hint not in tried:
            tried[hint] = predictor.predict(context, hint, seed, steps)[:m], torch.zeros(0)
        generated, done = tried[hint]
        if done.shape[0] < k:
            done = torch.cat([done, scores.lpips(generated[done.shape[0]:k], start + done.shape[0])])
            tried[hint] = generated, done
        return done[:k]

    def cost(hint: bytes, frames: int | None = None) -> float:
        return float(lpips_of(hint, m if frames is None else min(frames, m)).mean()) + spec.hint_byte_weight * len(hint)

    hint = hints.choose(predictor, context, start, cost)
    variants = getattr(predictor, "encoder_variants", None)  # kinds that offer more per call than the hint search tries
    if variants is not None:
        for variant in variants(context, hint, scores.source[start:start + m], seed, steps):
            if cost(variant) < cost(hint):
                hint = variant
    lpips = lpips_of(hint, m)
    return tried[hint][0], lpips, hint if spec.takes_hints else None


class DirectPieces:
    """loop.LoopPieces computed when asked, nothing cached but the source's LPIPS features (the
    encoder's single pass). `hints`: the hint policy (default: the settings' search's)."""

    def __init__(self, frames: torch.Tensor, codec: ImageCodec, predictor: Predictor, metric,
                 settings: EncoderSettings, first_frame: int, hints: HintSearch | None = None):
        self.frames, self.codec, self.predictor, self.metric = frames, codec, predictor, metric
        self.settings, self.first_frame = settings, first_frame
        self.frame_count, self.context_frames = frames.shape[0], predictor.context_frames
        self.scores = SourceScores(metric, frames, max_pixels=settings.scoring_pixels)
        self.hints = hints or HintSearch(settings.search, frames)

    def _piece(self, payload: bytes, frame: torch.Tensor, i: int) -> CodedPiece:
        return CodedPiece(payload, frame, float(self.scores.lpips(frame[None], i)[0]),
                          float(self.scores.psnr(frame[None], i)[0]))

    def intra(self, i: int, quality: int) -> CodedPiece:
        payload = self.codec.encode(self.frames[i], quality)
        h, w = self.frames.shape[1:3]
        return self._piece(payload, self.codec.decode(payload, quality, h, w), i)

    def residual(self, i: int, quality: int, prediction: torch.Tensor) -> CodedPiece:
        payload = self.codec.encode(residual_image(self.frames[i], prediction), quality)
        h, w = self.frames.shape[1:3]
        return self._piece(payload, apply_residual(prediction, self.codec.decode(payload, quality, h, w)), i)

    def _seed(self, i: int) -> int:
        return derive_seed(self.settings.seed, self.first_frame + i)

    def predict(self, context: torch.Tensor, i: int) -> PredictionPiece:
        generated, lpips, hint = predict_call(self.predictor, self.scores, self.hints, context, self._seed(i),
                                              self.settings.sampling_steps, i)
        psnrs = self.scores.psnr(generated, i)
        return PredictionPiece(tuple(generated), tuple(lpips.tolist()), tuple(psnrs.tolist()), hint)

    def regenerate(self, context: torch.Tensor, i: int, hint: bytes | None) -> torch.Tensor:
        """The frames (F,H,W,3) of the call `predict(context, i)` made, from its chosen hint: the
        same bits, without the hint search or any scoring (rate control's evicted frames)."""
        return self.predictor.predict(context, hint or b"", self._seed(i), self.settings.sampling_steps)


def encode_segment(frames: torch.Tensor, codec: ImageCodec, predictor: Predictor, metric,
                   settings: EncoderSettings, first_frame: int = 0) -> SegmentResult:
    """frames (n,H,W,3) uint8 -> SegmentResult. `first_frame` is the segment's index in the
    stream (with settings.seed it feeds the per-call seeds)."""
    if settings.inter_level is not None:
        return encode_inter_segment(frames, metric, settings.inter_level,
                                    SourceScores(metric, frames, max_pixels=settings.scoring_pixels))
    pieces = DirectPieces(frames, codec, predictor, metric, settings, first_frame)
    trace = run_loop(pieces, settings.quality, settings.lpips_threshold,
                     residual_quality_for(codec.qualities, settings.quality, settings.residual_levels))
    # every frame's scores were measured as the loop decided on it: no second LPIPS pass
    return SegmentResult(segment=trace.segment, reconstruction=trace.reconstruction,
                         lpips=torch.tensor(trace.lpips), psnr=torch.tensor(trace.psnr, dtype=torch.float64))


def encode_inter_segment(frames: torch.Tensor, metric, level: int, scores: SourceScores | None = None) -> SegmentResult:
    """frames (n,H,W,3) uint8 -> SegmentResult of the segment coded as one AV1 inter GOP. `scores`:
    the segment's SourceScores when the caller has one (its cached source features are reused)."""
    n, h, w, _ = frames.shape
    scores = scores or SourceScores(metric, frames)
    payload = encode_gop(frames, level)
    reconstruction = decode_gop(payload, n, h, w)
    return SegmentResult(segment=Segment.inter_gop(n, level, payload), reconstruction=reconstruction,
                         lpips=scores.lpips(reconstruction, 0), psnr=scores.psnr(reconstruction, 0))


def make_header(codec: ImageCodec, predictor: Predictor, settings: EncoderSettings, width: int,
                height: int, fps: Fraction, first_frame: int = 0) -> StreamHeader:
    return StreamHeader(
        keyframe_model_id=codec.model_id, keyframe_hash=codec.content_hash, predictor_model_id=predictor.model_id,
        predictor_hash=predictor.content_hash, width=width, height=height, fps=Fraction(fps),
        seed=settings.seed, context_frames=predictor.context_frames,
        frames_per_call=predictor.frames_per_call, sampling_steps=settings.sampling_steps,
        lpips_threshold=settings.lpips_threshold, first_frame=first_frame)


@dataclass(frozen=True)
class EncodedVideo:
    """A whole stream: its bytes and per-segment results (reconstructions stay in memory only
    when the caller keeps them)."""

    data: bytes
    stream: Stream
    results: tuple[SegmentResult, ...]

    @property
    def frame_count(self) -> int:
        return self.stream.frame_count

    @property
    def bpp(self) -> float:
        h = self.stream.header
        return len(self.data) * 8 / (self.frame_count * h.width * h.height)


def encode_video(segments: Iterable[torch.Tensor], fps: Fraction, codec: ImageCodec,
                 predictor: Predictor, metric, settings: EncoderSettings, first_frame: int = 0,
                 on_segment: Callable[[SegmentResult], None] | None = None) -> EncodedVideo:
    """Encode consecutive segments (each (n,H,W,3) uint8, n <= gop) into one stream."""
    results: list[SegmentResult] = []
    header = None
    position = 0
    for frames in segments:
        if header is None:
            header = make_header(codec, predictor, settings, frames.shape[2], frames.shape[1], fps, first_frame)
        result = encode_segment(frames, codec, predictor, metric, settings, position)
        position += frames.shape[0]
        results.append(result)
        if on_segment:
            on_segment(result)
    if header is None:
        raise ValueError("no frames to encode")
    stream = Stream(header, tuple(r.segment for r in results))
    return EncodedVideo(pack(stream), stream, tuple(results))
