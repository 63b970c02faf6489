"""Tests for evc_archive.io.video_probe on small synthetic videos made with PyAV itself."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from evc_archive.io.video_probe import VideoInfo, probe_video
from evc_archive.io.video_read import read_frames
from tests.io.synthetic_videos import CASES, VFR_PTS, N, synthetic


@pytest.mark.parametrize("key", list(CASES))
def test_probe_and_read_every_format(videos: dict[str, Path], key: str) -> None:
    case, path = CASES[key], videos[key]
    info = probe_video(path)
    assert isinstance(info, VideoInfo)
    assert (info.width, info.height, info.frame_count) == (case.width, case.height, N)
    assert info.codec == case.decoder
    assert info.pix_fmt == case.pix_fmt
    assert info.variable_frame_rate is case.vfr
    assert isinstance(info.fps, Fraction)
    if case.vfr:  # measured mean rate: 29 gaps over 1.8 s
        assert info.fps == Fraction(N - 1) / Fraction(VFR_PTS[-1] - VFR_PTS[0], 1000)
    else:
        assert info.fps == 25
    fast = probe_video(path, exact=False)  # packet counting agrees on all of these
    assert fast == info

    frames = read_frames(path)
    assert frames.shape == (N, case.height, case.width, 3) and frames.dtype == np.uint8
    source = synthetic(N, case.height, case.width).astype(np.int16)
    errors = np.abs(frames[:, None].astype(np.int16) - source[None]).mean(axis=(2, 3, 4))
    assert errors.diagonal().max() < case.max_mae
    # Display order: each decoded frame is closest to the source frame with its own index.
    assert (errors.argmin(axis=1) == np.arange(N)).all()
