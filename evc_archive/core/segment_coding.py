"""One segment to a target, the way every caller does it: search -> choose -> encode -> check bytes.

- `search_points`: rate control's exact RD points of the segment near a target (ratecontrol's
  SegmentSimulator over the residual choices and, where the settings allow it, the inter GOP).
- `encode_at`: the segment encoded for real at fixed settings or at a chosen RDPoint, packed as the
  one-segment stream the archive stores; at a point, its bytes must be the ones rate control measured.
  A point that carries its simulated stream (ratecontrol.carried_streams) is not encoded again: its
  stream is decoded, and the decode must rebuild the frames the simulation scored.
- `encode_to_target`: the three for one segment on its own (the per-segment choice,
  ratecontrol.choose_for_target). A corpus instead allocates its budget over all segments' points
  (ratecontrol.allocate) between `search_points` and `encode_at`.

Seeds: a segment object is a one-segment stream, so predictor calls are seeded from the segment's
own frame positions (0..n-1) and settings.seed; `first_frame` only records where the segment sits
in its source (the header's first frame).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import torch

from evc_archive.core.bitstream import Stream, StreamHeader, pack, unpack
from evc_archive.core.decoder import decode_segment
from evc_archive.core.encoder import SegmentResult, encode_segment, make_header
from evc_archive.core.fast_search import NARROW_SEARCHES, fast_points
from evc_archive.core.hint_search import HintSearch
from evc_archive.core.keyframes.base import ImageCodec
from evc_archive.core.loop import residual_search
from evc_archive.core.predictors.base import Predictor
from evc_archive.core.ratecontrol import (SEARCH_THRESHOLDS, RDPoint, SegmentSimulator, carried_streams,
                                          choose_for_target)
from evc_archive.core.runtime import fingerprint
from evc_archive.core.settings import EncoderSettings
from evc_archive.core.source_scores import full_size_lpips


@dataclass(frozen=True)
class SegmentCoder:
    """The models and fixed inputs every call on one segment shares."""

    codec: ImageCodec
    predictor: Predictor
    metric: object  # core.metrics LPIPS
    fps: Fraction = Fraction(25)


@dataclass(frozen=True)
class CodedSegment:
    """A segment encoded for real: the object's bytes, what the decoder rebuilds, the settings the
    encoder ran, and rate control's point and note (None / "" at fixed settings). `decoded`: the
    reconstruction is the decode of `data` (a carried stream's), so it needs no verify-decode.
    `lpips` (n,): the reconstruction's LPIPS at full size, what is reported (result.lpips is the
    loop's, at settings.scoring_pixels)."""

    data: bytes
    result: SegmentResult
    settings: EncoderSettings
    lpips: torch.Tensor
    point: RDPoint | None = None
    note: str = ""
    decoded: bool = False

    @property
    def bpp(self) -> float:
        n, h, w = self.result.reconstruction.shape[:3]
        return len(self.data) * 8 / (n * h * w)


def segment_simulator(coder: SegmentCoder, frames: torch.Tensor, settings: EncoderSettings,
                      first_frame: int = 0, hints: HintSearch | None = None) -> SegmentSimulator:
    """The rate-control simulator of one segment (n,H,W,3) uint8 with the settings' residual
    choices and inter fallback: what search_points searches (`hints`: another hint policy than
    the settings' search's, for benchmarks)."""
    return SegmentSimulator(frames, coder.codec, coder.predictor, coder.metric, settings, coder.fps, first_frame,
                            residual_search(settings.residual_levels), settings.inter_fallback, hints)


def search_points(coder: SegmentCoder, frames: torch.Tensor, settings: EncoderSettings,
                  target_bpp: float | tuple[float, ...], first_frame: int = 0,
                  thresholds: tuple[float, ...] = SEARCH_THRESHOLDS) -> list[RDPoint]:
    """frames (n,H,W,3) uint8 -> the exact RD points a target near `target_bpp` (or each of several
    targets) can use: by settings.search, the fast or quick search's few near each target
    (core.fast_search, one simulator shared between the targets) or the exhaustive sweep's for the highest
    (SegmentSimulator.sweep_near over `thresholds`, which covers every target below it)."""
    targets = tuple(target_bpp) if isinstance(target_bpp, tuple) else (target_bpp,)
    simulator = segment_simulator(coder, frames, settings, first_frame)
    if settings.search in NARROW_SEARCHES:
        points: dict[tuple, RDPoint] = {}
        for target in targets:
            points.update(((p.quality, p.threshold, p.residual_levels, p.inter), p)
                          for p in fast_points(simulator, target, NARROW_SEARCHES[settings.search]))
        return carried_streams(sorted(points.values(), key=lambda p: (p.bytes, p.lpips)))
    return carried_streams(simulator.sweep_near(max(targets), thresholds=thresholds))


def decode_carried(coder: SegmentCoder, point: RDPoint, header: StreamHeader) -> SegmentResult | None:
    """The SegmentResult of a point's carried stream, or None when the stream is not its segment
    packed under `header` byte for byte (another encode's). Its one segment is decoded with the
    coder's models, which must rebuild the frames rate control simulated (their sha256)."""
    stream = unpack(point.stream.data)
    if pack(Stream(header, stream.segments)) != point.stream.data:
        return None
    reconstruction = decode_segment(stream.segments[0], stream.header, coder.codec, coder.predictor)
    if fingerprint(reconstruction) != point.stream.reconstruction_sha256:
        raise RuntimeError(f"decoding rate control's stream of {point.label} gives other frames than it "
                           "simulated: encoder and decoder disagree")
    return SegmentResult(stream.segments[0], reconstruction, torch.tensor(point.stream.lpips),
                         torch.tensor(point.stream.psnr, dtype=torch.float64))


def encode_at(coder: SegmentCoder, frames: torch.Tensor, settings: EncoderSettings, first_frame: int = 0,
              point: RDPoint | None = None, note: str = "") -> CodedSegment:
    """frames (n,H,W,3) uint8 -> CodedSegment at `settings`, or at `point` (its setting over
    `settings`), whose bytes must then be exactly the point's. A point's carried stream made with
    the same header (settings, models, size, first frame) is decoded, not encoded again
    (decode_carried)."""
    chosen = settings if point is None else point.settings(settings)
    n, h, w, _ = frames.shape
    header = make_header(coder.codec, coder.predictor, chosen, w, h, coder.fps, first_frame)
    carried = decode_carried(coder, point, header) if point is not None and point.stream is not None else None
    if carried is not None:
        return CodedSegment(point.stream.data, carried, chosen, _full_size(coder, carried, frames, chosen), point,
                            note, decoded=True)
    result = encode_segment(frames, coder.codec, coder.predictor, coder.metric, chosen)
    data = pack(Stream(header, (result.segment,)))
    if point is not None and len(data) != point.bytes:
        raise RuntimeError(f"the encode gave {len(data)} bytes where rate control measured {point.bytes} "
                           f"({point.label}): encoder and rate control disagree")
    return CodedSegment(data, result, chosen, _full_size(coder, result, frames, chosen), point, note)


def _full_size(coder: SegmentCoder, result: SegmentResult, frames: torch.Tensor, settings: EncoderSettings):
    return full_size_lpips(coder.metric, result.reconstruction, frames, result.lpips, settings.scoring_pixels)


def encode_to_target(coder: SegmentCoder, frames: torch.Tensor, settings: EncoderSettings, target_bpp: float,
                     first_frame: int = 0, thresholds: tuple[float, ...] = SEARCH_THRESHOLDS) -> CodedSegment:
    """frames (n,H,W,3) uint8 -> the lowest-LPIPS CodedSegment within `target_bpp` (the cheapest,
    with a note, when none fits)."""
    choice = choose_for_target(search_points(coder, frames, settings, target_bpp, first_frame, thresholds), target_bpp)
    return encode_at(coder, frames, settings, first_frame, choice.point, choice.note)
