"""Rate control: settings (keyframe quality, LPIPS threshold) for a target bpp, per segment and for a
whole corpus (docs/ratecontrol.md explains the algorithm).

1. `SegmentSimulator` runs the paper's loop for many settings of one segment and shares the work
   between them. The loop's trajectory is a chain of coded frames; what happens after a coded frame
   at position i depends only on the decoded context there, never on the threshold that led to it.
   So keyframe encodes are cached per (quality, position), and predictor calls with the LPIPS of
   their frames per (context bytes, position). A sweep of thresholds then costs a few encodes, not
   one encode per setting, and every point is exact: the bytes are the real stream's size.
2. `choose_for_target` picks a segment's best point under a bpp target; `allocate` spreads a corpus
   budget over segments with a Lagrangian (equal-slope) search on each segment's lower convex hull,
   then fills what is left greedily by the best LPIPS gain per byte.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from fractions import Fraction

import torch

from evc_archive.core.bitstream import THRESHOLD_UNIT, Stream, pack
from evc_archive.core.bounded_cache import BoundedCache
from evc_archive.core.encoder import DirectPieces, encode_inter_segment, make_header
from evc_archive.core.gop_av1 import CRF_BY_LEVEL, WHOLE_CRF_LEVELS
from evc_archive.core.hint_search import HintSearch
from evc_archive.core.keyframes.base import ImageCodec
from evc_archive.core.loop import CodedPiece, PredictionPiece, residual_quality_for, run_loop
from evc_archive.core.predictors.base import Predictor
from evc_archive.core.residual import apply_residual
from evc_archive.core.runtime import fingerprint
from evc_archive.core.settings import EncoderSettings

# thresholds below 0.1 pay only with residual frames (frequent, cheap coded frames)
DEFAULT_THRESHOLDS = (0.05, 0.075) + tuple(round(0.1 + 0.025 * i, 3) for i in range(19))  # 0.05 .. 0.55
SEARCH_THRESHOLDS = (0.05, 0.075) + tuple(round(0.1 + 0.05 * i, 3) for i in range(10))  # 0.05 .. 0.55
# sweep_near fills a gap between two grid thresholds whose points differ by more than this fraction
# of bytes with up to REFINE_STEPS of the loop's own breakpoints (SegmentSimulator.next_threshold)
REFINE_GAP = 0.25
REFINE_STEPS = 3
# the streams a table carries (Pareto points only, at most this many bytes in all): what lets the
# final encode verify-decode the simulated stream instead of encoding the segment again; the driver
# holds them between the passes, so this bounds its memory per segment
CARRIED_STREAM_BYTES = 1 << 20


@dataclass(frozen=True)
class PointStream:
    """What the simulator made for one point: the one-segment stream's bytes, the sha256 of the
    frames its decoder must rebuild (runtime.fingerprint) and their per-frame LPIPS / PSNR."""

    data: bytes
    reconstruction_sha256: str
    lpips: tuple[float, ...]
    psnr: tuple[float, ...]


@dataclass(frozen=True)
class RDPoint:
    """One setting's exact outcome on one segment (`stream`: the simulated stream, when carried)."""

    quality: int
    threshold: float
    bytes: int
    frames: int
    pixels: int  # frames * width * height
    lpips: float  # mean over frames
    psnr: float  # mean over frames
    coded: int
    residual_levels: int | None = None  # EncoderSettings.residual_levels of this point
    inter: bool = False  # the segment as one AV1 inter GOP at level `quality` (threshold unused)
    stream: PointStream | None = field(default=None, compare=False, repr=False)

    def row(self) -> dict:
        """The point's numbers (everything but the stream), e.g. for JSON."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "stream"}

    @property
    def bpp(self) -> float:
        return self.bytes * 8 / self.pixels

    @property
    def label(self) -> str:
        """Short text of the setting: q8/t0.3[/r2] for the loop, inter-crf50.75 for an inter GOP."""
        if self.inter:
            return f"inter-crf{CRF_BY_LEVEL[self.quality]:g}"
        return f"q{self.quality}/t{self.threshold:g}" + ("" if self.residual_levels is None else f"/r{self.residual_levels}")

    def settings(self, base: EncoderSettings) -> EncoderSettings:
        """`base` with this point's setting: what the encoder runs to reproduce it."""
        return replace(base, quality=self.quality, lpips_threshold=self.threshold, residual_levels=self.residual_levels,
                       inter_level=self.quality if self.inter else None)


@dataclass
class SimulationCost:
    keyframe_encodes: int = 0
    predictor_calls: int = 0
    lpips_frames: int = 0
    settings_evaluated: int = 0
    inter_encodes: int = 0
    regenerated_calls: int = 0  # predictor calls made again because their frames had been evicted


FRAME_CACHE_BYTES = 512 << 20  # decoded / generated frames a simulator keeps (core.bounded_cache); an
# evicted piece keeps its bytes and scores, its frames are rebuilt (decoded or regenerated, bit-exact)


class CachedPieces:
    """loop.LoopPieces shared between settings: coded frames per (quality, position[, prediction]),
    predictor calls per (context bytes, position). Each piece is computed once, by the encoder's
    own DirectPieces, so a simulated setting is exactly what the encoder would do. Bytes, hints and
    scores stay for the simulator's life; frames stay in a BoundedCache and are rebuilt from the
    piece (decode, or one predictor call with its chosen hint) when they were evicted."""

    def __init__(self, direct: DirectPieces, cost: SimulationCost, frame_cache_bytes: int = FRAME_CACHE_BYTES):
        self.direct, self.cost = direct, cost
        self.frame_count, self.context_frames = direct.frame_count, direct.context_frames
        self.frames = BoundedCache(frame_cache_bytes)
        self._intra: dict[tuple[int, int], CodedPiece] = {}
        self._residual: dict[tuple[int, int, bytes], CodedPiece] = {}
        self._predictions: dict[tuple[bytes, int], PredictionPiece] = {}

    @staticmethod
    def _digest(frames: torch.Tensor) -> bytes:
        return hashlib.blake2b(frames.numpy().tobytes(), digest_size=16).digest()

    def _coded(self, table: dict, key: tuple, compute, rebuild) -> CodedPiece:
        light = table.get(key)
        if light is None:
            piece = compute()
            self.cost.keyframe_encodes += 1
            self.cost.lpips_frames += 1
            table[key] = replace(piece, frame=None)
            self.frames.put(("coded",) + key, (piece.frame,))
            return piece
        frames = self.frames.get(("coded",) + key)
        if frames is None:
            frames = (rebuild(light.payload),)
            self.frames.put(("coded",) + key, frames)
        return replace(light, frame=frames[0])

    def intra(self, i: int, quality: int) -> CodedPiece:
        h, w = self.direct.frames.shape[1:3]
        return self._coded(self._intra, (quality, i), lambda: self.direct.intra(i, quality),
                           lambda payload: self.direct.codec.decode(payload, quality, h, w))

    def residual(self, i: int, quality: int, prediction: torch.Tensor) -> CodedPiece:
        h, w = self.direct.frames.shape[1:3]
        return self._coded(self._residual, (quality, i, self._digest(prediction)),
                           lambda: self.direct.residual(i, quality, prediction),
                           lambda payload: apply_residual(prediction, self.direct.codec.decode(payload, quality, h, w)))

    def predict(self, context: torch.Tensor, i: int) -> PredictionPiece:
        key = (self._digest(context), i)
        light = self._predictions.get(key)
        if light is None:
            call = self.direct.predict(context, i)
            self._predictions[key] = replace(call, frames=())
            self.frames.put(("call",) + key, call.frames)
            self.cost.predictor_calls += 1
            self.cost.lpips_frames += len(call.frames)
            return call
        frames = self.frames.get(("call",) + key)
        if frames is None:
            frames = tuple(self.direct.regenerate(context, i, light.hint)[:len(light.lpips)])
            self.frames.put(("call",) + key, frames)
            self.cost.regenerated_calls += 1
        return replace(light, frames=frames)


_SETTINGS = object()  # run()'s default: the settings' residual_levels


class SegmentSimulator:
    """frames (n,H,W,3) uint8 of one segment; `run(quality, threshold[, residual_levels])` ->
    RDPoint, exact and cached. The sweeps cover `residual_choices` (default: the settings' own) and,
    with `inter`, the segment coded as one AV1 inter GOP (`run_inter(level)`). `hints`: the
    predictor calls' hint policy (default: the settings' search's)."""

    def __init__(self, frames: torch.Tensor, codec: ImageCodec, predictor: Predictor, metric,
                 settings: EncoderSettings, fps: Fraction = Fraction(25), first_frame: int = 0,
                 residual_choices: tuple[int | None, ...] | None = None, inter: bool = False,
                 hints: HintSearch | None = None):
        self.frames, self.codec, self.predictor, self.metric = frames, codec, predictor, metric
        self.settings, self.fps, self.first_frame = settings, fps, first_frame
        self.n, self.h, self.w = frames.shape[0], frames.shape[1], frames.shape[2]
        self.cost = SimulationCost()
        # a segment object is a one-segment stream: its calls are seeded from positions 0..n-1, as the
        # encoder and decoder seed them; first_frame is the header's (the segment's place in its source)
        self.pieces = CachedPieces(DirectPieces(frames, codec, predictor, metric, settings, 0, hints), self.cost)
        self.residual_choices = residual_choices or (settings.residual_levels,)
        self.inter = inter
        # per setting: its point and the highest LPIPS among its trace's frames <= threshold (next_threshold)
        self._points: dict[tuple[int, float, int | None], tuple[RDPoint, float]] = {}
        self._inter_points: dict[int, RDPoint] = {}

    def run(self, quality: int, threshold: float, residual_levels=_SETTINGS) -> RDPoint:
        """The encoder's loop (core.loop.run_loop) on cached pieces."""
        if residual_levels is _SETTINGS:
            residual_levels = self.settings.residual_levels
        key = (quality, threshold, residual_levels)
        if key in self._points:
            return self._points[key][0]
        self.cost.settings_evaluated += 1
        trace = run_loop(self.pieces, quality, threshold,
                         residual_quality_for(self.codec.qualities, quality, residual_levels))
        settings = replace(self.settings, lpips_threshold=threshold, quality=quality, residual_levels=residual_levels)
        header = make_header(self.codec, self.predictor, settings, self.w, self.h, self.fps, self.first_frame)
        data = pack(Stream(header, (trace.segment,)))
        point = RDPoint(quality, threshold, len(data), self.n, self.n * self.w * self.h, sum(trace.lpips) / self.n,
                        sum(trace.psnr) / self.n, sum(trace.segment.coded), residual_levels,
                        stream=PointStream(data, fingerprint(trace.reconstruction), trace.lpips, trace.psnr))
        self._points[key] = point, max((v for v in trace.lpips if v <= threshold), default=-1.0)
        return point

    def next_threshold(self, quality: int, threshold: float, residual_levels=_SETTINGS) -> float | None:
        """The highest threshold (a multiple of 1/THRESHOLD_UNIT) below `threshold` at which the
        loop may decide differently, or None. The loop compares each frame's LPIPS with the threshold
        (accept a prediction, or take a coded candidate that meets it); every frame that passed
        scores at most the highest LPIPS among the trace's frames <= threshold, so any threshold
        from that score up gives the same trajectory."""
        if residual_levels is _SETTINGS:
            residual_levels = self.settings.residual_levels
        self.run(quality, threshold, residual_levels)
        highest = self._points[(quality, threshold, residual_levels)][1]
        below = (math.ceil(highest * THRESHOLD_UNIT) - 1) / THRESHOLD_UNIT
        return below if below >= 0 else None

    def refine_between(self, quality: int, upper: float, lower: float, residual_levels=_SETTINGS,
                       steps: int = REFINE_STEPS) -> list[RDPoint]:
        """Up to `steps` points at the loop's breakpoints strictly between thresholds `upper` and
        `lower` (highest first): the settings a grid of thresholds steps over."""
        points: list[RDPoint] = []
        t = self.next_threshold(quality, upper, residual_levels)
        while t is not None and t > lower and len(points) < steps:
            points.append(self.run(quality, t, residual_levels))
            t = self.next_threshold(quality, t, residual_levels)
        return points

    def run_inter(self, level: int) -> RDPoint:
        """The segment as one AV1 inter GOP (encoder.encode_inter_segment), exact bytes."""
        if level not in self._inter_points:
            self.cost.inter_encodes += 1
            result = encode_inter_segment(self.frames, self.metric, level, self.pieces.direct.scores)
            self.cost.lpips_frames += self.n
            point = RDPoint(level, 0.0, 0, self.n, self.n * self.w * self.h, float(result.lpips.mean()),
                            float(result.psnr.mean()), self.n, None, True)
            header = make_header(self.codec, self.predictor, point.settings(self.settings), self.w, self.h, self.fps,
                                 self.first_frame)
            data = pack(Stream(header, (result.segment,)))
            stream = PointStream(data, fingerprint(result.reconstruction), tuple(result.lpips.tolist()),
                                 tuple(result.psnr.tolist()))
            self._inter_points[level] = replace(point, bytes=len(data), stream=stream)
        return self._inter_points[level]

    def sweep(self, qualities: tuple[int, ...] | None = None,
              thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS) -> list[RDPoint]:
        """Every (residual choice, quality, threshold) of the grid; cheap after the first few thanks
        to the caches."""
        points = [self.run(q, t, r) for r in self.residual_choices for q in (qualities or self.codec.qualities)
                  for t in thresholds]
        return points + ([self.run_inter(level) for level in WHOLE_CRF_LEVELS] if self.inter else [])

    def sweep_near(self, target_bpp: float, window: float = 3.0,
                   thresholds: tuple[float, ...] = SEARCH_THRESHOLDS, patience: int = 2,
                   refine_steps: int = REFINE_STEPS) -> list[RDPoint]:
        """Only the points a target can use, cheapest first. Per residual choice, qualities from the
        highest down; per quality, thresholds from the highest (fewest coded frames) down, stopping at
        - the first point above window * target (lower thresholds only cost more), or
        - every frame coded (lower thresholds change nothing), or
        - `patience` points in a row dominated (no fewer bytes and no better LPIPS, and not the
          same point, which another residual choice often gives at high thresholds) by points already
          found: from there this quality only buys bits that other qualities spend better.
        Where two neighbouring thresholds' points differ by more than REFINE_GAP of bytes (typically
        one more coded frame doubling a low-rate segment), up to `refine_steps` points at the loop's
        own breakpoints between them are added (refine_between): the grid alone can leave a target
        with nothing between "too cheap" and "too dear". The stopping rules ignore the added points,
        so the result is the grid's points plus the added ones (refine_steps=0: the grid's only).
        The expensive settings (many coded frames at a low quality) are never simulated. With `inter`,
        the inter GOP levels from the cheapest up to the first above window * target are added."""
        points: list[RDPoint] = []  # the grid's: the stopping rules look at these only
        refined: list[RDPoint] = []  # so that refining adds points and never removes one
        for r, q in ((r, q) for r in self.residual_choices for q in sorted(self.codec.qualities, reverse=True)):
            dominated_run, previous = 0, None
            for t in sorted(thresholds, reverse=True):
                p = self.run(q, t, r)
                if (refine_steps and previous is not None and p.bytes > (1 + REFINE_GAP) * previous.bytes
                        and previous.bpp <= window * target_bpp):
                    refined.extend(self.refine_between(q, previous.threshold, t, r, refine_steps))
                previous = p
                dominated = any(o.bytes <= p.bytes and o.lpips <= p.lpips and (o.bytes, o.lpips) != (p.bytes, p.lpips)
                                for o in points if (o.quality, o.residual_levels) != (q, r))
                points.append(p)
                dominated_run = dominated_run + 1 if dominated else 0
                if p.bpp > window * target_bpp or p.coded == p.frames or dominated_run >= patience:
                    break
        if self.inter:
            for level in WHOLE_CRF_LEVELS:
                points.append(self.run_inter(level))
                if points[-1].bpp > window * target_bpp:
                    break
            refined.extend(refine_inter(self.run_inter, self._inter_points, target_bpp, probes=2))
        return points + refined


def refine_inter(run_inter: Callable[[int], RDPoint], tried: dict[int, RDPoint], target_bpp: float,
                 probes: int = 1) -> list[RDPoint]:
    """Inter GOP levels (`tried`: level -> point) between the dearest tried level within the target
    and the cheapest tried above it: up to `probes` more (`run_inter`), each where log(bpp), linear
    between the two, reaches the target (rounded down), none where that is the fitting level itself.
    Between two whole CRF steps 1 probe takes about half of the gap to the target, 2 nearly all."""
    tried, added = dict(tried), []
    for _ in range(probes):
        fitting = [lv for lv, p in tried.items() if p.bpp <= target_bpp]
        if not fitting:
            break
        fit = max(fitting)
        over = min((lv for lv, p in tried.items() if p.bpp > target_bpp and lv > fit), default=None)
        if over is None or over - fit <= 1:
            break
        low, high = math.log(tried[fit].bpp), math.log(tried[over].bpp)
        step = math.floor((math.log(target_bpp) - low) / (high - low) * (over - fit)) if high > low else 0
        if step < 1:
            break
        level = fit + min(step, over - fit - 1)
        tried[level] = run_inter(level)
        added.append(tried[level])
    return added


# -- choosing settings ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Choice:
    point: RDPoint
    note: str = ""  # "" when the target was met; otherwise why it could not be


def pareto_front(points: list[RDPoint]) -> list[RDPoint]:
    """The points no other beats in both bytes and LPIPS, sorted by bytes (LPIPS falling)."""
    front: list[RDPoint] = []
    for p in sorted(points, key=lambda p: (p.bytes, p.lpips)):
        if not front or p.lpips < front[-1].lpips:
            front.append(p)
    return front


def carried_streams(points: list[RDPoint], limit_bytes: int = CARRIED_STREAM_BYTES) -> list[RDPoint]:
    """`points` with the streams of the Pareto front's points only (what an allocation picks),
    cheapest first while they fit in `limit_bytes`; every other point without its stream (its
    final encode runs the encoder again)."""
    keep, total = set(), 0
    for p in pareto_front(points):
        if p.stream is None or total + len(p.stream.data) > limit_bytes:
            break
        keep.add(id(p))
        total += len(p.stream.data)
    return [p if id(p) in keep else replace(p, stream=None) for p in points]


def lower_hull(points: list[RDPoint]) -> list[RDPoint]:
    """The Pareto front (bytes up, LPIPS down) and then its lower convex hull, sorted by bytes."""
    hull: list[RDPoint] = []
    for p in pareto_front(points):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # drop b if it lies on or above the segment a-p
            if (b.lpips - a.lpips) * (p.bytes - a.bytes) >= (p.lpips - a.lpips) * (b.bytes - a.bytes):
                hull.pop()
            else:
                break
        hull.append(p)
    return hull


def choose_for_target(points: list[RDPoint], target_bpp: float) -> Choice:
    """Lowest mean LPIPS with bpp <= target; the cheapest point (with a note) when none fits."""
    fits = [p for p in points if p.bpp <= target_bpp]
    if not fits:
        cheapest = min(points, key=lambda p: (p.bytes, p.lpips))
        return Choice(cheapest, f"target {target_bpp:g} bpp is below the cheapest setting ({cheapest.bpp:.4f} bpp)")
    best = min(fits, key=lambda p: (p.lpips, p.bytes))
    note = ""
    if all(p.bpp <= target_bpp for p in points) and best.bpp < 0.95 * target_bpp:
        note = f"target {target_bpp:g} bpp exceeds what the best setting needs ({best.bpp:.4f} bpp)"
    return Choice(best, note)


@dataclass
class Allocation:
    choices: list[Choice]
    budget_bytes: float
    total_bytes: int = 0
    total_pixels: int = 0
    lagrange_multiplier: float = 0.0
    note: str = ""

    @property
    def bpp(self) -> float:
        return self.total_bytes * 8 / self.total_pixels if self.total_pixels else 0.0


def allocate(tables: list[list[RDPoint]], target_bpp: float, cap_bpp: float | None = None,
             spent_bytes: int = 0, spent_pixels: int = 0) -> Allocation:
    """Pick one point per segment so that (spent + chosen bytes) * 8 / (all pixels) <= target while
    the frame-weighted LPIPS sum is smallest. `cap_bpp` bounds every segment; `spent_*` account for
    segments already archived (resume)."""
    if cap_bpp is not None:
        tables = [[p for p in t if p.bpp <= cap_bpp] or [min(t, key=lambda p: p.bytes)] for t in tables]
    pixels = spent_pixels + sum(t[0].pixels for t in tables)
    budget = target_bpp * pixels / 8 - spent_bytes
    hulls = [lower_hull(t) for t in tables]

    def pick(lam: float) -> list[RDPoint]:
        return [min(h, key=lambda p: p.lpips * p.frames + lam * p.bytes) for h in hulls]

    def cost(sel: list[RDPoint]) -> int:
        return sum(p.bytes for p in sel)

    lo, hi = 0.0, 1.0
    while cost(pick(hi)) > budget and hi < 1e9:
        hi *= 4
    if cost(pick(hi)) > budget:  # even the cheapest points overrun
        sel = [h[0] for h in hulls]
        alloc = Allocation([Choice(p, "corpus target below the cheapest settings") for p in sel], budget, note=
                           f"target {target_bpp:g} bpp is below what the cheapest settings give")
    else:
        for _ in range(60):
            mid = (lo + hi) / 2
            if cost(pick(mid)) > budget:
                lo = mid
            else:
                hi = mid
        sel = pick(hi)
        # greedy fill: best LPIPS gain per extra byte among all points (not only the hull) that still fit
        slack = budget - cost(sel)
        improved = True
        while improved:
            improved = False
            best = None
            for k, table in enumerate(tables):
                for p in table:
                    extra = p.bytes - sel[k].bytes
                    gain = (sel[k].lpips - p.lpips) * p.frames
                    if gain > 0 and extra <= slack and (best is None or gain / max(extra, 1) > best[0]):
                        best = (gain / max(extra, 1), k, p)
            if best:
                _, k, p = best
                slack -= p.bytes - sel[k].bytes
                sel[k] = p
                improved = True
        alloc = Allocation([Choice(p) for p in sel], budget, lagrange_multiplier=hi)
        if all(p.lpips == min(q.lpips for q in t) for p, t in zip(sel, tables)) and cost(sel) < 0.95 * budget:
            alloc.note = f"target {target_bpp:g} bpp exceeds what the best settings need"
    alloc.total_bytes = spent_bytes + cost([c.point for c in alloc.choices])
    alloc.total_pixels = pixels
    return alloc
