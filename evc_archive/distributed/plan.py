"""The plan is data: probed sources -> a list of segments with deterministic ids and keys.

Pure functions, no I/O: the same probes and GOP always give the same plan, so resuming is
"plan minus finished segments".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from fractions import Fraction

# A worker's peak memory for one segment, by frame size: above every row of docs/benchmarks/scale.md
# of 2026-12-04 (peak RSS of the whole process, rate control included: 2.3 GiB at 640x360, 2.7-2.8
# GiB at 1280x720, 3.2 GiB at 1920x1080; models, LPIPS and SVT-AV1 ~1.4 GiB, rate control's frame
# and feature caches at most ~0.75 GiB: core.ratecontrol.FRAME_CACHE_BYTES,
# core.source_scores.FEATURE_CACHE_BYTES).
WORKER_BASE_BYTES = 2.3 * 2**30
WORKER_BYTES_PER_PIXEL = 800
DEFAULT_WORKER_MEMORY_GIB = 4.0


@dataclass(frozen=True)
class SourceProbe:
    """What the driver learned about one source (or why it could not)."""

    uri: str
    video_id: str
    frame_count: int = 0
    width: int = 0
    height: int = 0
    fps: Fraction = Fraction(0)
    error: str | None = None  # one line when the source is unusable


@dataclass(frozen=True)
class SegmentPlan:
    """One unit of work: frames [start, end) of one source (end exclusive)."""

    segment_id: str  # "<video_id>/<index:06d>"
    video_id: str
    source_uri: str
    index: int
    start: int
    end: int  # exclusive
    width: int
    height: int
    fps: Fraction
    video_frames: int = 0  # frames of the whole source: restore checks a video is complete

    @property
    def frames(self) -> int:
        return self.end - self.start

    @property
    def object_key(self) -> str:
        return segment_key(self.video_id, self.index)


def worker_memory_bytes(width: int, height: int) -> float:
    """The estimated peak memory of a worker coding one segment of width x height frames."""
    return WORKER_BASE_BYTES + WORKER_BYTES_PER_PIXEL * width * height


def refuse_oversized(probe: SourceProbe, memory_gib: float) -> SourceProbe:
    """The probe, or (when its frames need more than `memory_gib` per worker) the probe with a
    one-line error that says so: the video is refused, the rest of the corpus goes on."""
    if probe.error or probe.frame_count <= 0:
        return probe
    needed = worker_memory_bytes(probe.width, probe.height)
    if needed <= memory_gib * 2**30:
        return probe
    return replace(probe, error=f"frames of {probe.width}x{probe.height} need about {needed / 2**30:.1f} GiB per "
                                f"worker, above the {memory_gib:g} GiB budget (--worker-memory-gib)")


def segment_key(video_id: str, index: int) -> str:
    return f"segments/{video_id}/{index:06d}.evc"


def segment_ranges(frame_count: int, gop: int) -> list[tuple[int, int]]:
    """[start, end) of each of the ceil(frame_count / gop) segments of at most `gop` frames (end exclusive)."""
    if gop < 1:
        raise ValueError(f"gop must be >= 1, got {gop}")
    return [(start, min(start + gop, frame_count)) for start in range(0, frame_count, gop)]


def plan_segments(probes: list[SourceProbe], gop: int) -> list[SegmentPlan]:
    """Split every usable source into ceil(frames / gop) segments of at most `gop` frames.
    Sources with an error or no frames give no segments (the caller records them as failed).
    Sources with the same video id (the same content under the same file name, or one URI listed
    twice) are one video: it is planned once, from the first of their URIs in sorted order."""
    if gop < 1:
        raise ValueError(f"gop must be >= 1, got {gop}")
    plans = []
    planned: set[str] = set()
    for p in sorted(probes, key=lambda p: (p.video_id, p.uri)):
        if p.error or p.frame_count <= 0 or p.video_id in planned:
            continue
        planned.add(p.video_id)
        for index, (start, end) in enumerate(segment_ranges(p.frame_count, gop)):
            plans.append(SegmentPlan(f"{p.video_id}/{index:06d}", p.video_id, p.uri, index, start, end,
                                     p.width, p.height, p.fps, p.frame_count))
    return plans


def segment_seed(base_seed: int, segment_id: str) -> int:
    """The predictor seed of one segment, derived from the job seed and the segment id."""
    digest = hashlib.sha256(f"{base_seed}:{segment_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
