import torch

import math

from evc_archive.core.loop import CodedPiece, accepted_run, choose_candidate, prefer_residual, residual_quality_for


def _piece(nbytes: int, lpips: float) -> CodedPiece:
    return CodedPiece(bytes(nbytes), torch.zeros(1, 1, 3, dtype=torch.uint8), lpips, 30.0)


def test_prefer_residual_takes_the_cheaper_passing_then_the_better():
    assert prefer_residual(_piece(50, 0.1), _piece(500, 0.05), threshold=0.2)  # both pass: cheaper
    assert not prefer_residual(_piece(600, 0.1), _piece(500, 0.05), threshold=0.2)
    assert not prefer_residual(_piece(50, 0.3), _piece(500, 0.1), threshold=0.2)  # only intra passes
    assert prefer_residual(_piece(900, 0.1), _piece(500, 0.3), threshold=0.2)  # only the residual passes
    assert prefer_residual(_piece(900, 0.3), _piece(50, 0.4), threshold=0.2)  # neither: the better
    assert not prefer_residual(_piece(9, 0.5), _piece(900, 0.4), threshold=0.2)


def test_residual_quality_steps_up_the_codec_levels_and_clamps():
    assert residual_quality_for((1, 2, 3, 4, 5), 2, 2) == 4
    assert residual_quality_for((1, 2, 3, 4, 5), 4, 3) == 5
    assert residual_quality_for((1, 2, 3, 4, 5), 3, 0) == 3
    assert residual_quality_for((1, 2, 3), 1, None) is None


def test_choose_candidate_keeps_the_prediction_on_track_longest():
    assert accepted_run((0.1, 0.2, 0.3), 0.25) == 2 and accepted_run((0.3, 0.1), 0.25) == 0
    steady, sharp_then_lost = (0.19, 0.19, 0.19, 0.19), (0.05, 0.05, 0.3, 0.3)
    # the lower mean loses when it is rejected sooner: the loop would code a frame two frames earlier
    assert choose_candidate([sharp_then_lost, steady], [0.0, 0.0], 0.2) == (1, 0.19)
    assert choose_candidate([sharp_then_lost, steady], [0.0, 0.0], math.inf) == (0, 0.3)  # the lowest mean: 0.175
    assert choose_candidate([sharp_then_lost, steady], [0.0, 0.0], 0.1) == (0, 0.05)  # 2 frames vs none
    # equal runs: the lower mean over the accepted frames and the first rejected one, hint cost included
    a, b = (0.1, 0.15, 0.5, 0.5), (0.12, 0.12, 0.2, 0.1)
    assert choose_candidate([a, b], [0.0, 0.0], 0.16)[0] == 1  # (0.1 + 0.15 + 0.5) / 3 > (0.12 + 0.12 + 0.2) / 3
    assert choose_candidate([a, b], [0.0, 0.2], 0.16)[0] == 0
    assert choose_candidate([a, a], [0.0, 0.0], 0.16)[0] == 0  # ties: the earliest
    assert choose_candidate([(0.5,), (0.6,)], [0.0, 0.0], 0.2) == (0, -1.0)  # nothing passes, nothing compared
