"""Rate control's narrow searches: a few exact points of one segment near a target. `FAST`
(`--search fast`, the product's default) and `QUICK` (`--search quick`, fewer settings) are two
`NarrowSearch` settings of the same walk; `ratecontrol.SegmentSimulator.sweep_near`
(`--search exhaustive`) stays the reference they are measured against (docs/benchmarks/scale.md,
fast_search.md). On the six validation clips at 128x128 (2026-12-03, both without their inter
margin) QUICK took 32-41 % less search time than FAST for mean LPIPS 0.1561 / 0.1225 / 0.0707
against 0.1474 / 0.1185 / 0.0705 at 0.02 / 0.03 / 0.05 bpp, so FAST stays the default.

Every point is still exact (the simulator runs the encoder's own loop; the bytes are the stream's);
only fewer settings are tried:
- qualities: the segment's first frame is always coded at the segment's quality, so its size at
  each quality bounds what a target can afford. On the validation clips the chosen quality's first
  frame takes 0.4-0.95 of the target's bytes; the search tries the qualities whose first frame
  takes its frame0_shares of the budget (found by bisection on the first frame's size, which grows
  with quality);
- residual choices: its residual_choices (of the settings' own), the ones the validation clips
  choose most;
- thresholds: its thresholds from the highest (fewest coded frames) down, stopping at the first
  point above its window x target or with every frame coded;
- then a walk over neighbouring qualities (up to quality_walk steps, each a chain of thresholds)
  while the best point within the target improves;
- where the best point within the target then still accepts frames as poor as poor_threshold
  (fast motion: the budget buys one or two coded frames at these qualities and the predictor
  cannot hold the rest), the chains of a cheaper first frame (poor_share of the budget: more
  coded frames at a lower quality), and a walk from there if that found a better point;
- the inter GOP first: its bytes grow about geometrically with the CRF, so over whole CRF steps
  from a first step and a guess with a typical slope a secant search on log(bytes) lands next to
  the target in 2-4 encodes, a bisection closes what is left, and the dearest step within the
  target comes with the cheapest step above it and a cheaper step near it (3-5 encodes: 4.0 on
  average against 5.4 for a start at the cheapest step, on a curve measured at 1280x720; one more
  than that start where even the cheapest step is over the target, as at 128x128 and 0.02 bpp);
  then one encode at the quarter-CRF level (SVT-AV1 takes CRF in quarter steps) where log(bytes),
  linear between the two whole steps, meets the target, which takes about half of a whole step's
  5-10 % gap to the target; the loop's chains then stop as soon as the loop's best point within
  the target is inter_margin LPIPS behind the inter GOP's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from evc_archive.core.gop_av1 import WHOLE_CRF_LEVELS
from evc_archive.core.ratecontrol import RDPoint, SegmentSimulator, refine_inter



@dataclass(frozen=True)
class NarrowSearch:
    """The knobs of a search over a few settings near a target (fast_points)."""

    frame0_shares: tuple[float, ...]  # first frame's bytes / target's bytes of the qualities tried
    residual_choices: tuple[int | None, ...]  # of the simulator's, the ones tried
    quality_walk: int  # neighbouring qualities tried, at most, after the frame0_shares ones
    window: float = 1.5  # a chain stops above this multiple of the target (room for a corpus' allocation)
    refine_steps: int = 2  # the loop's own breakpoints tried where a chain steps over the target
    thresholds: tuple[float, ...] = (0.55, 0.35, 0.24, 0.17, 0.12, 0.09)
    inter_margin: float | None = None  # stop the loop's chains once it is this much LPIPS behind the inter GOP
    poor_threshold: float | None = None  # a best point at this threshold or above adds poor_share's chains
    poor_share: float = 0.25


# inter_margin 0.02: on the six validation clips at 128x128 the same 18 choices as without it, and at
# 0.05 bpp 66 predictor calls and 45 keyframe encodes a (clip, target) instead of 135 and 91
# (docs/benchmarks/fast_search.md, 2026-12-03)
# poor_threshold 0.3 (2026-12-07, fast_search.md): on the six validation clips at 128x128 it fires on 3 of
# the 18 (clip, target) pairs (decord_flipping_a_pancake at 0.02 and 0.03, mmaction2_pool_cleaning at
# 0.02) and changes 2 choices: mean LPIPS 0.1439 / 0.1096 / 0.0705 at 0.02 / 0.03 / 0.05 bpp against
# 0.1474 / 0.1185 / 0.0705, for 23 % / 13 % more keyframe encodes and 26 % / 16 % more predictor calls
FAST = NarrowSearch(frame0_shares=(0.5, 0.72), residual_choices=(None, 0), quality_walk=3, inter_margin=0.02,
                    poor_threshold=0.3)
QUICK = NarrowSearch(frame0_shares=(0.6,), residual_choices=(0,), quality_walk=1, inter_margin=0.02)
NARROW_SEARCHES = {"fast": FAST, "quick": QUICK}  # EncoderSettings.search -> its NarrowSearch
INTER_PROBES = 4  # inter GOP encodes before the bisection
INTER_NEIGHBOUR_REACH = 3  # a cheaper whole CRF step this near the dearest that fits is kept, none is added
INTER_START_STEP = 11  # the inter GOP's first whole CRF step (CRF 53)
INTER_PRIOR_SLOPE = 0.06  # d log(bytes) / d CRF step assumed for the second step (1280x720, sam2_02_cups:
# 0.10 from CRF 63 to 53, 0.049 from 53 to 41)
INTER_FINE_PROBES = 1  # quarter-CRF encodes between the two whole steps around the target


def frame0_qualities(simulator: SegmentSimulator, budget_bytes: float,
                     shares: tuple[float, ...] = FAST.frame0_shares) -> list[int]:
    """The qualities whose first frame takes about each of `shares` of `budget_bytes`
    (distinct, each the highest quality within its share; the lowest quality when none fits)."""
    ordered = sorted(simulator.codec.qualities)

    def size(q: int) -> int:
        return len(simulator.pieces.intra(0, q).payload)

    chosen: list[int] = []
    for share in shares:
        lo, hi = 0, len(ordered) - 1  # highest index whose size fits share * budget
        if size(ordered[lo]) > share * budget_bytes:
            q = ordered[0]
        else:
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if size(ordered[mid]) <= share * budget_bytes:
                    lo = mid
                else:
                    hi = mid - 1
            q = ordered[lo]
        if q not in chosen:
            chosen.append(q)
    return chosen


def inter_points(simulator: SegmentSimulator, target_bpp: float) -> list[RDPoint]:
    """Inter GOP points around the target, over whole CRF steps (gop_av1.WHOLE_CRF_LEVELS): a first
    step (INTER_START_STEP) and a guess from it with INTER_PRIOR_SLOPE (or, when the first step is
    over the target, the cheapest), a secant search on log(bpp) from there, a bisection of what it
    leaves between the dearest step within the target and the cheapest above it, that step's
    cheaper neighbour unless a step at most INTER_NEIGHBOUR_REACH below it was tried; then one
    quarter-CRF level between the two whole steps around the target (ratecontrol.refine_inter)."""
    steps = range(1, len(WHOLE_CRF_LEVELS) + 1)  # step k: level WHOLE_CRF_LEVELS[k - 1]
    tried: dict[int, RDPoint] = {}

    def run(step: int) -> RDPoint:
        tried[step] = simulator.run_inter(WHOLE_CRF_LEVELS[step - 1])
        return tried[step]

    def clamp(step: float) -> int:
        return min(max(round(step), steps[0]), steps[-1])

    b = INTER_START_STEP
    pb = run(b)
    if pb.bpp > target_bpp:
        a, pa = steps[0], run(steps[0])
        if pa.bpp > target_bpp:  # even the cheapest level is over
            return sorted(tried.values(), key=lambda p: p.bytes)
    else:
        guess = clamp(b + (math.log(target_bpp) - math.log(pb.bpp)) / INTER_PRIOR_SLOPE)
        if guess == b:
            guess = clamp(b + 1)
        a, pa, b, pb = b, pb, guess, run(guess)
    for _ in range(INTER_PROBES - 2):
        slope = (math.log(pb.bpp) - math.log(pa.bpp)) / (b - a)
        if slope <= 0:
            break
        guess = clamp(math.floor(b + (math.log(target_bpp) - math.log(pb.bpp)) / slope))  # the dearest fit
        if guess in tried:  # the estimate is a tried step: its neighbour towards the target
            guess = clamp(guess + 1 if tried[guess].bpp <= target_bpp else guess - 1)
            if guess in tried:
                break
        a, pa, b, pb = b, pb, guess, run(guess)
    while True:  # bytes grow with the step: bisect the gap at the target
        fit = max(k for k, p in tried.items() if p.bpp <= target_bpp)  # step 1 or the first fits
        over = min((k for k, p in tried.items() if p.bpp > target_bpp), default=None)
        if over is None:
            if fit + 1 in steps and fit + 1 not in tried:
                run(fit + 1)
            break
        if over - fit <= 1:
            break
        run((fit + over) // 2)
    if fit - 1 in steps and not any(fit - INTER_NEIGHBOUR_REACH <= k < fit for k in tried):
        run(fit - 1)  # a cheaper step near the dearest that fits, for a corpus' allocation
    fine = refine_inter(simulator.run_inter, {p.quality: p for p in tried.values()}, target_bpp, INTER_FINE_PROBES)
    return sorted([*tried.values(), *fine], key=lambda p: p.bytes)


def quality_chain(simulator: SegmentSimulator, quality: int, residual_levels: int | None,
                  target_bpp: float, search: NarrowSearch = FAST) -> list[RDPoint]:
    """One quality and residual choice over the search's thresholds from the highest down, stopping
    at the first point above its window x target or with every frame coded; where two steps
    straddle the target, up to its refine_steps of the loop's breakpoints between them
    (SegmentSimulator.refine_between)."""
    points: list[RDPoint] = []
    for t in search.thresholds:
        p = simulator.run(quality, t, residual_levels)
        if points and points[-1].bpp <= target_bpp < p.bpp:  # the target lies between two grid steps
            points.extend(simulator.refine_between(quality, points[-1].threshold, t, residual_levels,
                                                   search.refine_steps))
        points.append(p)
        if p.bpp > search.window * target_bpp or p.coded == p.frames:
            break
    return points


def best_within(points: list[RDPoint], target_bpp: float) -> RDPoint | None:
    fits = [p for p in points if p.bpp <= target_bpp]
    return min(fits, key=lambda p: (p.lpips, p.bytes)) if fits else None


def fast_points(simulator: SegmentSimulator, target_bpp: float, search: NarrowSearch = FAST) -> list[RDPoint]:
    """The exact points `search` tries for `target_bpp`, cheapest first: the inter GOP's (when the
    simulator has it); its frame0_shares qualities' chains per residual choice (of its
    residual_choices, those the simulator has), then a walk over neighbouring qualities (up to its
    quality_walk: their chains, at the best point's residual choice) while the best point within
    the target improves; then, where the best point still accepts frames as poor as its
    poor_threshold, the chains of a first frame at poor_share of the budget and a walk from what
    they find. With its inter_margin, the loop's chains stop as soon as the loop's best point
    within the target is that much LPIPS above the inter GOP's."""
    n, h, w = simulator.n, simulator.h, simulator.w
    budget_bytes = target_bpp * n * h * w / 8
    inter = inter_points(simulator, target_bpp) if simulator.inter else []
    inter_best = best_within(inter, target_bpp)

    def loop_lost(points: list[RDPoint]) -> bool:
        best = best_within(points, target_bpp)
        return None not in (search.inter_margin, inter_best, best) and \
            best.lpips > inter_best.lpips + search.inter_margin

    residual_choices = [r for r in simulator.residual_choices if r in search.residual_choices] or \
        list(simulator.residual_choices[:1])
    chains = [(q, r) for q in frame0_qualities(simulator, budget_bytes, search.frame0_shares) for r in residual_choices]
    points: list[RDPoint] = []
    tried: set[tuple[int, int | None]] = set()

    def run_chains(pairs: list[tuple[int, int | None]], stop_when_lost: bool = True) -> bool:
        """Each (quality, residual choice) chain not tried yet (stopping once the loop has lost, or
        all of them); whether the loop has lost."""
        for q, r in pairs:
            if (q, r) not in tried:
                tried.add((q, r))
                points.extend(quality_chain(simulator, q, r, target_bpp, search))
                if stop_when_lost and loop_lost(points):
                    return True
        return loop_lost(points)

    ordered = sorted(simulator.codec.qualities)

    def walk() -> bool:
        """Neighbouring qualities of the best point while it improves; whether the loop has lost."""
        for _ in range(search.quality_walk):
            best = best_within(points, target_bpp)
            if best is None:
                return False
            k = ordered.index(best.quality)
            fresh = [(ordered[j], best.residual_levels) for j in (k - 1, k + 1) if 0 <= j < len(ordered)]
            if not any(pair not in tried for pair in fresh):
                return False
            if run_chains(fresh, stop_when_lost=False):
                return True
            if best_within(points, target_bpp) == best:
                return False
        return False

    lost = run_chains(chains) or walk()
    best = best_within(points, target_bpp)
    if not lost and best is not None and search.poor_threshold is not None and best.threshold >= search.poor_threshold:
        cheaper = frame0_qualities(simulator, budget_bytes, (search.poor_share,))
        if not run_chains([(q, r) for q in cheaper for r in residual_choices]) and best_within(points, target_bpp) != best:
            walk()
    return sorted(points + inter, key=lambda p: (p.bytes, p.lpips))
