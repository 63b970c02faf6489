"""Scores against a segment's source with its LPIPS features computed once (core.source_scores)."""

import torch

from evc_archive.core.metrics import score_frames, scoring_size
from evc_archive.core.source_scores import SourceScores, full_size_lpips, psnr_frames
from tests.conftest import moving_square_video


def test_scores_match_the_metric_on_frame_pairs(lpips_metric):
    source = moving_square_video(6, 48, 64, seed=1)
    others = moving_square_video(6, 48, 64, seed=2)
    scores = SourceScores(lpips_metric, source)
    assert torch.allclose(scores.lpips(others[2:5], 2), score_frames(lpips_metric, others[2:5], source[2:5]), atol=1e-6)
    assert torch.equal(scores.psnr(others[2:5], 2), psnr_frames(others[2:5], source[2:5]))
    scores.lpips(others[3:4], 3)
    assert scores.source_feature_frames == 3  # frame 3's features were kept


def test_small_frames_are_scored_upscaled(lpips_metric):
    source, other = moving_square_video(2, 16, 20, seed=1), moving_square_video(2, 16, 20, seed=3)
    assert torch.allclose(SourceScores(lpips_metric, source).lpips(other, 0), score_frames(lpips_metric, other, source),
                          atol=1e-6)


def test_the_feature_cache_stays_within_its_bytes(lpips_metric):
    source = moving_square_video(5, 48, 64, seed=1)
    one_frame = sum(f.numel() * f.element_size() for f in lpips_metric.features(source[:1]))
    scores = SourceScores(lpips_metric, source, cache_bytes=2 * one_frame)
    before = scores.lpips(source, 0)
    assert scores._features.size <= 2 * one_frame and len(scores._features) == 2
    assert torch.allclose(scores.lpips(source, 0), before)  # recomputed where evicted, same values
    assert scores.source_feature_frames == 10


def test_candidates_are_scored_in_bounded_batches(lpips_metric, monkeypatch):
    import evc_archive.core.metrics as metrics

    source, other = moving_square_video(5, 48, 64, seed=1), moving_square_video(5, 48, 64, seed=4)
    whole = SourceScores(lpips_metric, source).lpips(other, 0)
    monkeypatch.setattr(metrics, "SCORE_BATCH_PIXELS", 2 * 48 * 64)  # two frames a batch
    sizes = []
    features = lpips_metric.features
    monkeypatch.setattr(lpips_metric, "features", lambda x: sizes.append(x.shape[0]) or features(x))
    batched = SourceScores(lpips_metric, source).lpips(other, 0)
    assert max(sizes) == 2 and sizes.count(1) == 6  # candidates 2+2+1, source frames one at a time
    assert torch.allclose(batched, whole, atol=1e-6)


def test_a_pixel_budget_scores_the_pair_downscaled_and_full_size_lpips_rescores(lpips_metric):
    source, other = moving_square_video(3, 96, 128, seed=1), moving_square_video(3, 96, 128, seed=5)
    budget = 48 * 64  # 96x128 -> factor 2
    proxy = SourceScores(lpips_metric, source, max_pixels=budget).lpips(other, 0)
    assert torch.allclose(proxy, score_frames(lpips_metric, scoring_size(other, budget), scoring_size(source, budget)),
                          atol=1e-6)
    exact = score_frames(lpips_metric, other, source)
    assert not torch.allclose(proxy, exact, atol=1e-4)  # the proxy is another number
    assert torch.allclose(full_size_lpips(lpips_metric, other, source, proxy, budget), exact, atol=1e-6)
    assert full_size_lpips(lpips_metric, other, source, exact, None) is exact  # scored at full size: kept
    assert full_size_lpips(lpips_metric, other, source, exact, 96 * 128) is exact
