from fractions import Fraction

import pytest
import torch

from evc_archive.core.encoder import encode_video
from evc_archive.core.keyframes.av1_intra import AV1IntraCodec
from evc_archive.core.predictors.copy_last import CopyLastFramePredictor
from evc_archive.core.ratecontrol import (PointStream, RDPoint, SegmentSimulator, allocate, carried_streams,
                                          choose_for_target, lower_hull, pareto_front)
from evc_archive.core.settings import EncoderSettings
from tests.conftest import moving_square_video


def _same_trajectory(a: RDPoint, b: RDPoint) -> bool:
    """The loop decided the same (the header's threshold, hence the bytes, may differ)."""
    return (a.coded, a.lpips, a.psnr) == (b.coded, b.lpips, b.psnr)


def _pt(q, t, nbytes, lpips, frames=10, pixels=10 * 64 * 64):
    return RDPoint(q, t, nbytes, frames, pixels, lpips, 20.0, 1)


@pytest.mark.parametrize("predictor_kind,residual_levels", [("copy-last", None), ("diffusion", None), ("copy-last", 2),
                                                            ("diffusion", 2)])
def test_simulation_is_exact(tiny_codec, tiny_predictor, lpips_metric, predictor_kind, residual_levels, monkeypatch):
    """Every simulated point equals a real, independent encode: same bytes, same mean LPIPS (with
    residual coding on, on the AV1 intra codec: the untrained tiny codec never wins a residual, nor
    do the untrained diffusion model's predictions, so with it every rejected frame is a residual)."""
    import evc_archive.core.loop as loop

    if residual_levels is not None:
        tiny_codec = AV1IntraCodec(crf_by_quality={1: 55, 2: 45, 3: 35, 4: 25})
        if predictor_kind == "diffusion":
            monkeypatch.setattr(loop, "prefer_residual", lambda residual, intra, threshold: True)
    predictor = CopyLastFramePredictor(frames_per_call=3) if predictor_kind == "copy-last" else tiny_predictor
    frames = moving_square_video(10, 40, 56)
    base = EncoderSettings(gop=10, sampling_steps=2, seed=5, residual_levels=residual_levels)
    sim = SegmentSimulator(frames, tiny_codec, predictor, lpips_metric, base)
    probe = encode_video([frames], Fraction(25), tiny_codec, predictor, lpips_metric,
                         EncoderSettings(10.0, 1, 10, 2, 5))
    mid = float(probe.results[0].lpips[1:].median())
    residual_frames = 0
    for q, thr in [(1, 0.0), (1, mid), (2, mid), (2, 10.0), (1, mid * 1.1)]:
        point = sim.run(q, thr)
        enc = encode_video([frames], Fraction(25), tiny_codec, predictor, lpips_metric,
                           EncoderSettings(thr, q, 10, 2, 5, residual_levels))
        assert point.bytes == len(enc.data)
        assert point.coded == sum(enc.stream.segments[0].coded)
        assert point.lpips == pytest.approx(float(enc.results[0].lpips.mean()), abs=1e-5)
        residual_frames += sum(f.mode for f in enc.stream.segments[0].frames)
    assert (residual_frames > 0) == (residual_levels is not None)


def test_shared_work_is_cheaper_than_independent_encodes(tiny_codec, lpips_metric):
    frames = moving_square_video(12, 40, 56)
    sim = SegmentSimulator(frames, tiny_codec, CopyLastFramePredictor(frames_per_call=3), lpips_metric, EncoderSettings(gop=12))
    points = sim.sweep(thresholds=tuple(x / 20 for x in range(1, 21)))
    assert len(points) == 40
    # an independent encode codes at least one keyframe per setting; sharing codes each (quality, frame) once
    assert sim.cost.keyframe_encodes <= 2 * 12
    assert sim.cost.settings_evaluated == 40


def test_lower_hull_is_pareto_and_convex():
    pts = [_pt(1, 0.5, 100, 0.5), _pt(1, 0.4, 200, 0.3), _pt(2, 0.4, 250, 0.35), _pt(2, 0.3, 300, 0.29),
           _pt(3, 0.2, 400, 0.1), _pt(3, 0.1, 500, 0.09)]
    hull = lower_hull(pts)
    assert [p.bytes for p in hull] == [100, 200, 400, 500]  # 250 dominated, 300 above the chord
    slopes = [(b.lpips - a.lpips) / (b.bytes - a.bytes) for a, b in zip(hull, hull[1:])]
    assert all(s1 <= s2 for s1, s2 in zip(slopes, slopes[1:]))


def test_only_the_pareto_fronts_streams_are_carried_and_within_the_limit():
    def with_stream(p):
        return RDPoint(**p.row(), stream=PointStream(bytes(p.bytes), "", (), ()))

    pts = [with_stream(p) for p in (_pt(1, 0.5, 100, 0.5), _pt(1, 0.4, 200, 0.3), _pt(2, 0.4, 250, 0.35),
                                    _pt(2, 0.3, 300, 0.29), _pt(3, 0.2, 400, 0.1))]
    assert [p.bytes for p in pareto_front(pts)] == [100, 200, 300, 400]
    carried = carried_streams(pts)
    assert carried == pts and [p.bytes for p in carried if p.stream is not None] == [100, 200, 300, 400]
    assert [p.bytes for p in carried_streams(pts, limit_bytes=650) if p.stream is not None] == [100, 200, 300]
    assert "stream" not in pts[0].row() and RDPoint(**pts[0].row()) == pts[0]


def test_choose_for_target_and_its_notes():
    pts = [_pt(1, 0.5, 100, 0.5), _pt(2, 0.3, 300, 0.2), _pt(3, 0.2, 600, 0.1)]
    bpp = lambda b: b * 8 / (10 * 64 * 64)  # noqa: E731
    assert choose_for_target(pts, bpp(300)).point.bytes == 300
    low = choose_for_target(pts, bpp(50))
    assert low.point.bytes == 100 and "below the cheapest" in low.note
    high = choose_for_target(pts, bpp(5000))
    assert high.point.bytes == 600 and "exceeds what the best setting needs" in high.note


def test_allocate_meets_budget_and_moves_bits_where_they_help():
    pixels = 10 * 64 * 64
    easy = [_pt(1, 0.5, 100, 0.10), _pt(2, 0.3, 1000, 0.09)]  # more bits barely help
    hard = [_pt(1, 0.5, 100, 0.60), _pt(2, 0.3, 1000, 0.20)]  # more bits help a lot
    target = (100 + 1000) * 8 / (2 * pixels)
    alloc = allocate([easy, hard], target)
    assert alloc.total_bytes * 8 / alloc.total_pixels <= target + 1e-12
    assert [c.point.bytes for c in alloc.choices] == [100, 1000]
    capped = allocate([easy, hard], target, cap_bpp=500 * 8 / pixels)
    assert all(c.point.bytes <= 500 for c in capped.choices)
    impossible = allocate([easy, hard], 10 * 8 / (2 * pixels))
    assert "below" in impossible.note
    resumed = allocate([hard], target, spent_bytes=100, spent_pixels=pixels)
    assert resumed.choices[0].point.bytes == 1000 and resumed.total_bytes == 1100


def test_sweep_near_simulates_less_and_keeps_points_exact(tiny_codec, lpips_metric):
    frames = moving_square_video(12, 40, 56)
    predictor = CopyLastFramePredictor(frames_per_call=3)
    full_sim = SegmentSimulator(frames, tiny_codec, predictor, lpips_metric, EncoderSettings(gop=12))
    full = full_sim.sweep(thresholds=tuple(x / 20 for x in range(1, 21)))
    target = sorted(p.bpp for p in full)[len(full) // 2]
    near_sim = SegmentSimulator(frames, tiny_codec, predictor, lpips_metric, EncoderSettings(gop=12))
    near = near_sim.sweep_near(target, thresholds=tuple(x / 20 for x in range(1, 21)), refine_steps=0)
    assert near_sim.cost.settings_evaluated < full_sim.cost.settings_evaluated
    by_setting = {(p.quality, p.threshold): p for p in full}
    assert all(by_setting[(p.quality, p.threshold)] == p for p in near)  # same exact points
    assert choose_for_target(near, target).point.bpp <= target


def test_breakpoints_fill_the_gaps_of_a_coarse_grid(tiny_codec, lpips_metric):
    """next_threshold finds where the loop's decisions change: every threshold from the trace's
    highest passing LPIPS up gives the same point, the breakpoint below gives another; sweep_near on
    a two-threshold grid adds such points between them, and the encoder reproduces each exactly."""
    frames = moving_square_video(12, 40, 56)
    predictor = CopyLastFramePredictor(frames_per_call=3)
    base = EncoderSettings(gop=12)
    sim = SegmentSimulator(frames, tiny_codec, predictor, lpips_metric, base)
    upper, lower = 10.0, 0.0
    below = sim.next_threshold(2, upper)
    assert below is not None and below * 10000 == round(below * 10000)  # what the header can store
    assert _same_trajectory(sim.run(2, below + 1e-4), sim.run(2, upper))  # nothing changes above the breakpoint
    assert sim.run(2, below).coded > sim.run(2, upper).coded
    between = sim.refine_between(2, upper, lower, steps=3)
    assert 1 <= len(between) <= 3
    assert all(lower < p.threshold < upper for p in between)
    assert [p.coded for p in between] == sorted(p.coded for p in between)
    assert sim.run(2, upper).coded < between[0].coded
    near = SegmentSimulator(frames, tiny_codec, predictor, lpips_metric, base).sweep_near(
        1e9, thresholds=(lower, upper), refine_steps=2)
    refined = [p for p in near if p.threshold not in (lower, upper)]
    assert refined and all(p in between[:2] or p.quality != 2 for p in refined)
    grid_only = SegmentSimulator(frames, tiny_codec, predictor, lpips_metric, base).sweep_near(
        1e9, thresholds=(lower, upper), refine_steps=0)
    assert [p for p in near if p not in refined] == grid_only  # refining only adds points
    for p in refined:
        enc = encode_video([frames], Fraction(25), tiny_codec, predictor, lpips_metric, p.settings(base))
        assert len(enc.data) == p.bytes
        assert float(enc.results[0].lpips.mean()) == pytest.approx(p.lpips, abs=1e-5)


def test_hinted_calls_stay_exact_and_their_breakpoints_hold(lpips_metric):
    """With a hinted predictor (the encoder picks each call's hint among candidates) simulated
    points equal real encodes, hints included, and nothing changes above a breakpoint."""
    from evc_archive.core.predictors.motion_hint import GlobalMotionPredictor

    codec = AV1IntraCodec(crf_by_quality={1: 55, 2: 45, 3: 35, 4: 25})
    frames = moving_square_video(10, 40, 56)
    predictor = GlobalMotionPredictor(frames_per_call=3)
    base = EncoderSettings(gop=10, residual_levels=0)
    sim = SegmentSimulator(frames, codec, predictor, lpips_metric, base)
    for t in (10.0, 0.2, 0.1, 0.05):
        point = sim.run(2, t)
        enc = encode_video([frames], Fraction(25), codec, predictor, lpips_metric, point.settings(base))
        assert len(enc.data) == point.bytes
        assert float(enc.results[0].lpips.mean()) == pytest.approx(point.lpips, abs=1e-5)
        below = sim.next_threshold(2, t)
        assert below is None or _same_trajectory(sim.run(2, below + 1e-4), point)


def test_residual_choices_are_swept_and_each_point_says_its_own(lpips_metric):
    """With residual choices the sweep covers each; a point's residual_levels reproduces it."""
    from evc_archive.core.loop import RESIDUAL_SEARCH, residual_search

    assert residual_search(None) == (None,) and residual_search(2) == RESIDUAL_SEARCH
    codec = AV1IntraCodec(crf_by_quality={1: 55, 2: 45, 3: 35, 4: 25})
    frames = moving_square_video(10, 40, 56)
    predictor = CopyLastFramePredictor(frames_per_call=3)
    base = EncoderSettings(gop=10, residual_levels=2)
    sim = SegmentSimulator(frames, codec, predictor, lpips_metric, base, residual_choices=(None, 1))
    points = sim.sweep(qualities=(1, 2), thresholds=(0.05, 0.2))
    assert [p.residual_levels for p in points] == [None] * 4 + [1] * 4
    assert sim.run(2, 0.05) == SegmentSimulator(frames, codec, predictor, lpips_metric, base).run(2, 0.05)
    for p in points:
        enc = encode_video([frames], Fraction(25), codec, predictor, lpips_metric,
                           EncoderSettings(p.threshold, p.quality, 10, residual_levels=p.residual_levels))
        assert len(enc.data) == p.bytes
    near = sim.sweep_near(max(p.bpp for p in points), thresholds=(0.05, 0.2))
    assert {p.residual_levels for p in near} == {None, 1}


def test_inter_points_are_exact_and_chosen_where_they_win(lpips_metric):
    """With `inter`, the sweeps add the segment as one AV1 inter GOP; each such point is reproduced
    byte for byte by the encoder (through RDPoint.settings), decodes to the same frames, and wins a
    target on a static scene where the loop must code many frames."""
    from evc_archive.core.decoder import open_stream
    from evc_archive.core.gop_av1 import CRF_BY_LEVEL, WHOLE_CRF_LEVELS
    from evc_archive.core.model_library import ModelLibrary

    codec = AV1IntraCodec(crf_by_quality={1: 55, 2: 45, 3: 35, 4: 25})
    frames = moving_square_video(12, 48, 64)
    predictor = CopyLastFramePredictor(frames_per_call=3)
    base = EncoderSettings(gop=12, residual_levels=2)
    sim = SegmentSimulator(frames, codec, predictor, lpips_metric, base, residual_choices=(None, 2), inter=True)
    loop_only = SegmentSimulator(frames, codec, predictor, lpips_metric, base, residual_choices=(None, 2))
    points = sim.sweep(qualities=(2, 4), thresholds=(0.05, 0.2))
    inter = [p for p in points if p.inter]
    assert [p.quality for p in inter] == list(WHOLE_CRF_LEVELS) and all(p.coded == 12 and p.residual_levels is None for p in inter)
    assert [p for p in points if not p.inter] == loop_only.sweep(qualities=(2, 4), thresholds=(0.05, 0.2))
    assert sim.cost.inter_encodes == len(WHOLE_CRF_LEVELS)
    for p in (inter[0], inter[10], inter[-1]):
        assert p.label == f"inter-crf{CRF_BY_LEVEL[p.quality]:g}"
        enc = encode_video([frames], Fraction(25), codec, predictor, lpips_metric, p.settings(base))
        assert len(enc.data) == p.bytes and enc.stream.segments[0].inter is not None
        assert enc.data[4] == 4  # bitstream version 4
        decoded = next(open_stream(enc.data, ModelLibrary()).segments())
        assert torch.equal(decoded, enc.results[0].reconstruction)
        assert abs(float(enc.results[0].lpips.mean()) - p.lpips) < 1e-6
    best = choose_for_target(points, max(p.bpp for p in points)).point
    loop_best = choose_for_target([p for p in points if not p.inter], max(p.bpp for p in points)).point
    assert best.lpips <= loop_best.lpips
    near = sim.sweep_near(inter[3].bpp, thresholds=(0.05, 0.2))  # a target on a whole CRF step: no quarter levels
    assert [p.quality for p in near if p.inter] == list(WHOLE_CRF_LEVELS[:sum(p.inter for p in near)])
    assert [p for p in near if p.inter][-1].bpp > 3.0 * inter[3].bpp or sum(p.inter for p in near) == len(WHOLE_CRF_LEVELS)
    between = (inter[3].bpp * inter[4].bpp) ** 0.5  # between CRF 60 and 59: quarter levels are tried
    fine = [p for p in sim.sweep_near(between, thresholds=(0.05, 0.2)) if p.inter and p.quality not in WHOLE_CRF_LEVELS]
    assert fine and all(inter[3].quality < p.quality < inter[4].quality for p in fine)


def test_points_are_the_same_when_frames_are_evicted(tiny_codec, lpips_metric):
    """A simulator whose frame cache holds almost nothing rebuilds frames from the pieces (decode,
    one predictor call) and gives exactly the points of one that keeps every frame."""
    from evc_archive.core.predictors.motion_hint import GlobalMotionPredictor

    frames = moving_square_video(10, 32, 48)
    base = EncoderSettings.product("hyperprior", gop=10, search="fast")
    predictor = GlobalMotionPredictor(frames_per_call=3)
    roomy = SegmentSimulator(frames, tiny_codec, predictor, lpips_metric, base, residual_choices=(None, 0))
    tight = SegmentSimulator(frames, tiny_codec, predictor, lpips_metric, base, residual_choices=(None, 0))
    tight.pieces.frames.limit = 2 * 32 * 48 * 3  # two frames
    settings = [(q, t, r) for q in tiny_codec.qualities[:2] for t in (0.05, 0.2, 0.5) for r in (None, 0)]
    assert [tight.run(*s) for s in settings] == [roomy.run(*s) for s in settings]
    assert tight.pieces.frames.size <= tight.pieces.frames.limit and tight.cost.regenerated_calls > 0
    assert tight.cost.predictor_calls == roomy.cost.predictor_calls
