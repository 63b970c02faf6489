"""The encoder's hint policies (core.hint_search)."""

import pytest
import torch

from evc_archive.core.encoder import predict_call
from evc_archive.core.hint_search import FAST_MODE_FRAMES, HintSearch, SourceMotion
from evc_archive.core.predictors.copy_last import CopyLastFramePredictor
from evc_archive.core.predictors.motion_hint import GlobalMotionPredictor, unpack_velocity
from evc_archive.core.predictors.restore_hint import RestoreHintPredictor
from evc_archive.core.source_scores import SourceScores
from tests.core.predictors.test_motion_hint import panning_video
from tests.core.test_restore import random_restorer


class CountingScores(SourceScores):
    """SourceScores that counts the frames it scores."""

    scored = 0

    def lpips(self, frames, start):
        self.scored += frames.shape[0]
        return super().lpips(frames, start)


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
        HintSearch("nearest", torch.zeros(2, 8, 8, 3, dtype=torch.uint8))


@pytest.mark.parametrize("mode_frames", [1, 2])
def test_mode_frames_picks_the_restoration_mode_on_the_first_frames(tmp_path, lpips_metric, mode_frames):
    """restore-hint, fast policy with mode_frames: its 3 modes are scored on that many frames each,
    then the winner's other frames; the LPIPS returned covers every frame and is the frames' own."""
    video = panning_video(8, step=1.5)
    predictor = RestoreHintPredictor(random_restorer(tmp_path / "r.pt"), frames_per_call=4, model_id=6)
    scores = CountingScores(lpips_metric, video)
    frames, lpips, _ = predict_call(predictor, scores, HintSearch("fast", video, mode_frames), video[:1], 0, 1, 1)
    modes = len(predictor.kind.modes)
    assert scores.scored == modes * mode_frames + (4 - mode_frames)
    assert frames.shape[0] == lpips.shape[0] == 4
    assert torch.allclose(lpips, SourceScores(lpips_metric, video).lpips(frames, 1), atol=1e-5)
    every_frame = CountingScores(lpips_metric, video)
    predict_call(predictor, every_frame, HintSearch("fast", video, None), video[:1], 0, 1, 1)
    assert every_frame.scored == modes * 4  # None: every mode on every frame
    assert HintSearch("fast", video).mode_frames == FAST_MODE_FRAMES
