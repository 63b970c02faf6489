"""Rate control's fast search (core.fast_search): which settings it tries."""

import math
from types import SimpleNamespace

from evc_archive.core.fast_search import FAST, INTER_NEIGHBOUR_REACH, INTER_START_STEP, frame0_qualities, inter_points
from evc_archive.core.gop_av1 import CRF_BY_LEVEL, LEVELS_PER_CRF, WHOLE_CRF_LEVELS
from evc_archive.core.loop import CodedPiece
from evc_archive.core.ratecontrol import RDPoint

PIXELS = 30 * 128 * 128


class FakeInter:
    """run_inter(level) on a geometric bytes-per-CRF curve, counting encodes."""

    def __init__(self, cheapest_bpp: float, growth: float = 0.07):
        self.cheapest, self.growth, self.calls = cheapest_bpp, growth, []

    def run_inter(self, level: int) -> RDPoint:
        self.calls.append(level)
        bpp = self.cheapest * math.exp(self.growth * (63 - CRF_BY_LEVEL[level]))
        return RDPoint(level, 0.0, int(bpp * PIXELS / 8), 30, PIXELS, 0.1, 20.0, 30, None, True)


def test_the_inter_search_finds_the_level_nearest_the_target_in_few_encodes():
    sim = FakeInter(0.02)
    points = inter_points(sim, 0.03)
    fitting = [p for p in points if p.bpp <= 0.03]
    best = max(p.quality for p in fitting)
    assert sim.run_inter(best + 1).bpp > 0.03  # the dearest quarter-CRF level within the target was found
    assert (best - 1) % LEVELS_PER_CRF != 0  # between two whole CRF steps
    whole = [p.quality for p in points if p.quality in WHOLE_CRF_LEVELS]
    assert len(sim.calls) <= 7 and any(best - INTER_NEIGHBOUR_REACH * LEVELS_PER_CRF <= lv < best - 1 for lv in whole)


def test_the_inter_search_stops_when_even_the_cheapest_level_is_over():
    sim = FakeInter(0.05)
    start = WHOLE_CRF_LEVELS[INTER_START_STEP - 1]
    assert [p.quality for p in inter_points(sim, 0.03)] == [1, start]
    assert sim.calls == [start, 1] and CRF_BY_LEVEL[start] == 53


def test_the_inter_search_on_other_curves():
    for cheapest, growth, target in ((0.01, 0.05, 0.03), (0.02, 0.12, 0.09), (0.012, 0.03, 0.013), (0.01, 0.07, 5.0)):
        sim = FakeInter(cheapest, growth)
        points = inter_points(sim, target)
        best = max(p.quality for p in points if p.bpp <= target)
        assert best == max(CRF_BY_LEVEL) or sim.run_inter(best + 1).bpp > target


def test_refine_inter_probes_quarter_crf_levels_between_two_whole_steps():
    from evc_archive.core.ratecontrol import refine_inter

    sim = FakeInter(0.02, growth=0.1)
    tried = {lv: sim.run_inter(lv) for lv in (37, 41)}  # CRF 54 and 53
    target = sim.run_inter(39).bpp * 1.001  # CRF 53.5 is the dearest level within it
    sim.calls.clear()
    assert [p.quality for p in refine_inter(sim.run_inter, tried, target, probes=2)] == [39]
    assert refine_inter(sim.run_inter, tried, sim.run_inter(37).bpp * 1.01) == []  # under a quarter step: none
    assert refine_inter(sim.run_inter, tried, 1.0) == []  # nothing above the target
    assert refine_inter(sim.run_inter, tried, 0.001) == []  # nothing within it


def test_frame0_qualities_take_their_share_of_the_budget():
    sizes = {q: 40 * q for q in range(1, 26)}  # first-frame bytes grow with quality
    sim = SimpleNamespace(codec=SimpleNamespace(qualities=tuple(sizes)),
                          pieces=SimpleNamespace(intra=lambda i, q: CodedPiece(b"x" * sizes[q], None, 0.0, 0.0)))
    budget = 1000
    chosen = frame0_qualities(sim, budget)
    assert chosen == [max(q for q in sizes if sizes[q] <= share * budget) for share in FAST.frame0_shares]
    assert frame0_qualities(sim, 10) == [1]  # nothing fits: the lowest quality


def test_the_quick_search_tries_one_residual_choice_and_fewer_settings(lpips_metric):
    from fractions import Fraction

    from evc_archive.core.fast_search import FAST, QUICK, fast_points
    from evc_archive.core.keyframes.av1_intra import AV1IntraCodec
    from evc_archive.core.predictors.copy_last import CopyLastFramePredictor
    from evc_archive.core.segment_coding import SegmentCoder, segment_simulator
    from evc_archive.core.settings import EncoderSettings
    from tests.conftest import moving_square_video

    coder = SegmentCoder(AV1IntraCodec(), CopyLastFramePredictor(frames_per_call=3), lpips_metric, Fraction(25))
    frames = moving_square_video(8, 32, 48)
    runs = {}
    for name, search in (("fast", FAST), ("quick", QUICK)):
        simulator = segment_simulator(coder, frames, EncoderSettings.product(gop=8, search=name))
        runs[name] = fast_points(simulator, 0.3, search), simulator.cost.settings_evaluated
    quick, quick_settings = runs["quick"]
    loop = [p for p in quick if not p.inter]
    assert loop and {p.residual_levels for p in loop} == {0} and len({p.quality for p in loop}) <= 3
    assert any(p.inter for p in quick) and quick_settings < runs["fast"][1]


def test_the_loops_chains_stop_once_it_is_inter_margin_behind_the_inter_gop(lpips_metric):
    from dataclasses import replace
    from fractions import Fraction

    from evc_archive.core.fast_search import FAST, fast_points
    from evc_archive.core.keyframes.av1_intra import AV1IntraCodec
    from evc_archive.core.predictors.copy_last import CopyLastFramePredictor
    from evc_archive.core.segment_coding import SegmentCoder, segment_simulator
    from evc_archive.core.settings import EncoderSettings
    from tests.conftest import moving_square_video

    coder = SegmentCoder(AV1IntraCodec(), CopyLastFramePredictor(frames_per_call=3), lpips_metric, Fraction(25))
    frames = moving_square_video(8, 32, 48)
    chains = {}
    for margin in (None, -1.0):  # -1: any loop point within the target counts as lost to the inter GOP
        simulator = segment_simulator(coder, frames, EncoderSettings.product(gop=8))
        points = fast_points(simulator, 0.3, replace(FAST, inter_margin=margin))
        assert any(p.inter for p in points)
        chains[margin] = {(p.quality, p.residual_levels) for p in points if not p.inter}
    assert len(chains[-1.0]) == 1 < len(chains[None]) and chains[-1.0] <= chains[None]


class FakeLoop:
    """A segment the loop codes with `coded` frames at each threshold of FAST (more at lower
    thresholds), each frame costing `per_quality` bytes a quality level; the more coded frames, the
    lower the LPIPS. Records the (quality, residual choice) chains the search runs."""

    CODED = {0.55: 1, 0.35: 2, 0.24: 3, 0.17: 5, 0.12: 8, 0.09: 12}

    def __init__(self, per_quality: int):
        self.per_quality, self.chains = per_quality, set()
        self.n, self.h, self.w, self.inter = 30, 128, 128, False
        self.residual_choices = (None, 0)
        self.codec = SimpleNamespace(qualities=tuple(range(1, 26)))
        self.pieces = SimpleNamespace(intra=lambda i, q: CodedPiece(b"x" * (40 * q), None, 0.0, 0.0))

    def run(self, quality: int, threshold: float, residual_levels=None) -> RDPoint:
        self.chains.add((quality, residual_levels))
        coded = self.CODED[threshold]
        return RDPoint(quality, threshold, coded * self.per_quality * quality, 30, PIXELS,
                       0.5 / coded + 0.001 * (25 - quality), 20.0, coded, residual_levels)

    def refine_between(self, *args) -> list[RDPoint]:
        return []


def test_a_poor_best_point_adds_the_chains_of_a_cheaper_first_frame():
    """0.02 bpp is 1229 bytes: the frame0 shares pick q15 and q22 (40 bytes a level), whose best
    point within the target accepts frames at t0.35 (two coded frames): poor, so poor_share (0.25:
    q7) is tried too, and it and the walk from it win with more coded frames."""
    from dataclasses import replace

    from evc_archive.core.fast_search import best_within, fast_points

    poor = FakeLoop(per_quality=40)
    best = best_within(fast_points(poor, 0.02, FAST), 0.02)
    assert {(7, None), (7, 0)} <= poor.chains and best.quality <= 8 and best.coded >= 3
    without = FakeLoop(per_quality=40)
    fast_points(without, 0.02, replace(FAST, poor_threshold=None))
    assert not any(q <= 8 for q, _ in without.chains)
    cheap = FakeLoop(per_quality=10)  # the best point codes 8 frames at t0.12: nothing poor to fix
    best = best_within(fast_points(cheap, 0.02, FAST), 0.02)
    assert best.threshold < FAST.poor_threshold and not any(q <= 8 for q, _ in cheap.chains)
