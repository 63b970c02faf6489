"""The encoder's hint policies (core.hint_search)."""

import pytest
import torch

from evc_archive.core.encoder import predict_call
from evc_archive.core.hint_search import HintSearch, SourceMotion
from evc_archive.core.predictors.copy_last import CopyLastFramePredictor
from evc_archive.core.predictors.motion_hint import GlobalMotionPredictor, unpack_velocity
from evc_archive.core.source_scores import SourceScores
from tests.core.predictors.test_motion_hint import panning_video


def test_source_motion_chains_consecutive_shifts():
    video = panning_video(8, step=1.5)
    shifts = SourceMotion(video, 12).shifts(3, 3)  # from frame 2 to frames 3, 4, 5
    for d, (dy, dx) in shifts.items():
        assert abs(dy) < 0.3 and abs(dx + 1.5 * d) < 0.5 * d


def test_fast_search_follows_the_pan(lpips_metric):
    video = panning_video(8, step=1.5)
    predictor = GlobalMotionPredictor(frames_per_call=3)
    scores = SourceScores(lpips_metric, video)
    for policy in ("fast", "exhaustive"):
        _, lpips, hint = predict_call(predictor, scores, HintSearch(policy, video), video[:1], 0, 1, 1)
        vy, vx = unpack_velocity(hint)
        assert vy == 0 and -8 <= vx <= -4  # quarter pixels a frame: about -1.5 px
        still = scores.lpips(predictor.predict(video[:1], b"", 0, 1), 1)
        assert lpips.mean() < still.mean()


def test_kinds_without_hints_have_one_candidate(lpips_metric):
    video = panning_video(6)
    _, _, hint = predict_call(CopyLastFramePredictor(frames_per_call=2), SourceScores(lpips_metric, video),
                              HintSearch("fast", video), video[:1], 0, 1, 1)
    assert hint is None


def test_an_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="unknown"):
        HintSearch("quick", torch.zeros(2, 8, 8, 3, dtype=torch.uint8))
