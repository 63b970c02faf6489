"""Rate control's fast search (`--search fast`, the product's default): a few exact points of one
segment near a target, for about the cost of a few encodes. `ratecontrol.SegmentSimulator.sweep_near`
(`--search exhaustive`) stays the reference it is measured against (docs/benchmarks/scale.md).

Every point is still exact (the simulator runs the encoder's own loop; the bytes are the stream's);
only fewer settings are tried:
- qualities: the segment's first frame is always coded at the segment's quality, so its size at
  each quality bounds what a target can afford. On the validation clips the chosen quality's first
  frame takes 0.4-0.95 of the target's bytes; the search tries the qualities whose first frame
  takes FRAME0_SHARES of the budget (found by bisection on the first frame's size, which grows
  with quality);
- residual choices: FAST_RESIDUAL_CHOICES (of the settings' own), the ones the validation clips
  choose most;
- thresholds: FAST_THRESHOLDS from the highest (fewest coded frames) down, stopping at the first
  point above WINDOW x target or with every frame coded;
- the inter GOP: its bytes grow about geometrically with the level, so a secant search on
  log(bytes) lands next to the target in 2-4 encodes, a bisection closes what is left, and the
  dearest level within the target comes with both its neighbours.
"""

from __future__ import annotations

import math

from evc_archive.core.gop_av1 import CRF_BY_LEVEL
from evc_archive.core.ratecontrol import RDPoint, SegmentSimulator

FRAME0_SHARES = (0.5, 0.72)  # first frame's bytes / target's bytes of the qualities tried
FAST_RESIDUAL_CHOICES: tuple[int | None, ...] = (None, 0)
FAST_THRESHOLDS = (0.55, 0.35, 0.24, 0.17, 0.12, 0.09)
WINDOW = 1.5  # points up to this multiple of the target are kept (room for a corpus' allocation)
INTER_PROBES = 4


def frame0_qualities(simulator: SegmentSimulator, budget_bytes: float) -> list[int]:
    """The qualities whose first frame takes about each of FRAME0_SHARES of `budget_bytes`
    (distinct, each the highest quality within its share; the lowest quality when none fits)."""
    ordered = sorted(simulator.codec.qualities)

    def size(q: int) -> int:
        return len(simulator.pieces.intra(0, q).payload)

    chosen: list[int] = []
    for share in FRAME0_SHARES:
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
    """Inter GOP points around the target: a secant search on log(bpp) over the levels, a bisection
    of what it leaves between the dearest level within the target and the cheapest above it, then
    that level's cheaper neighbour."""
    levels = sorted(CRF_BY_LEVEL)
    tried: dict[int, RDPoint] = {}

    def run(level: int) -> RDPoint:
        tried[level] = simulator.run_inter(level)
        return tried[level]

    a, b = levels[0], levels[len(levels) // 4]
    pa = run(a)
    if pa.bpp > target_bpp:  # even the cheapest level is over
        return [pa]
    pb = run(b)
    for _ in range(INTER_PROBES - 2):
        slope = (math.log(pb.bpp) - math.log(pa.bpp)) / (b - a)
        if slope <= 0:
            break
        guess = min(max(round(b + (math.log(target_bpp) - math.log(pb.bpp)) / slope), levels[0]), levels[-1])
        if guess in tried:
            break
        a, pa, b, pb = b, pb, guess, run(guess)
    while True:  # bytes grow with the level: bisect the gap at the target
        fit = max(lv for lv, p in tried.items() if p.bpp <= target_bpp)
        over = min((lv for lv, p in tried.items() if p.bpp > target_bpp), default=None)
        if over is None:
            if fit + 1 in CRF_BY_LEVEL and fit + 1 not in tried:
                run(fit + 1)
            break
        if over - fit <= 1:
            break
        run((fit + over) // 2)
    if fit - 1 in CRF_BY_LEVEL and fit - 1 not in tried:
        run(fit - 1)
    return sorted(tried.values(), key=lambda p: p.bytes)


def fast_points(simulator: SegmentSimulator, target_bpp: float) -> list[RDPoint]:
    """The exact points the fast search tries for `target_bpp`, cheapest first."""
    n, h, w = simulator.n, simulator.h, simulator.w
    budget_bytes = target_bpp * n * h * w / 8
    residual_choices = [r for r in simulator.residual_choices if r in FAST_RESIDUAL_CHOICES] or \
        list(simulator.residual_choices[:1])
    points: list[RDPoint] = []
    for q in frame0_qualities(simulator, budget_bytes):
        for r in residual_choices:
            for t in FAST_THRESHOLDS:
                p = simulator.run(q, t, r)
                points.append(p)
                if p.bpp > WINDOW * target_bpp or p.coded == p.frames:
                    break
    points.extend(neighbours(simulator, points, target_bpp))
    if simulator.inter:
        points.extend(inter_points(simulator, target_bpp))
    return sorted(points, key=lambda p: (p.bytes, p.lpips))


def neighbours(simulator: SegmentSimulator, points: list[RDPoint], target_bpp: float) -> list[RDPoint]:
    """The best point within the target with its quality one level up and down (same threshold
    and residual choice), and its threshold halfway to the next grid threshold below."""
    fits = [p for p in points if p.bpp <= target_bpp]
    if not fits:
        return []
    best = min(fits, key=lambda p: (p.lpips, p.bytes))
    ordered = sorted(simulator.codec.qualities)
    k = ordered.index(best.quality)
    out = [simulator.run(ordered[j], best.threshold, best.residual_levels) for j in (k - 1, k + 1) if 0 <= j < len(ordered)]
    lower = [t for t in FAST_THRESHOLDS if t < best.threshold]
    if lower:
        out.append(simulator.run(best.quality, round((best.threshold + lower[0]) / 2, 4), best.residual_levels))
    return out
