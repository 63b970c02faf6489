"""The reported metrics' scoring size (core.reported_metrics.scoring_size)."""

import torch

from evc_archive.core.reported_metrics import REPORTED_MAX_PIXELS, scoring_size


def test_small_frames_are_scored_as_they_are():
    frames = torch.randint(0, 256, (2, 128, 128, 3), dtype=torch.uint8)
    assert scoring_size(frames) is frames


def test_large_frames_are_area_downscaled_by_an_integer_factor():
    frames = torch.randint(0, 256, (1, 360, 640, 3), dtype=torch.uint8)
    down = scoring_size(frames)
    assert down.shape == (1, 180, 320, 3) and down.dtype == torch.uint8
    assert int(down[0, 0, 0, 0]) == round(float(frames[0, :2, :2, 0].float().mean()))
    assert scoring_size(torch.zeros(1, 1080, 1920, 3, dtype=torch.uint8)).shape[1:3] == (180, 320)
    odd = scoring_size(torch.zeros(1, 241, 641, 3, dtype=torch.uint8))
    assert odd.shape[1] * odd.shape[2] <= REPORTED_MAX_PIXELS
