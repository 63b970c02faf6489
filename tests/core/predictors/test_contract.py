"""Every registered predictor answers the same two calls, as the encoder and decoder use them."""

import pytest
import torch

from evc_archive.core.model_library import ModelLibrary
from evc_archive.core.registry import PREDICTORS
from tests.conftest import moving_square_video


@pytest.mark.parametrize("name", [s.name for s in PREDICTORS.specs()])
def test_hint_candidates_and_predict(name):
    spec = PREDICTORS.named(name)
    predictor = ModelLibrary().predictor_named(name, frames_per_call=3)
    assert predictor.model_id == spec.kind_id
    video = moving_square_video(6, 32, 48)
    context, targets = video[:2], video[2:2 + predictor.frames_per_call]
    candidates = predictor.hint_candidates(context, targets)
    if not spec.takes_hints:
        assert candidates == [b""]
    assert candidates and candidates[0] == b"" and len(set(candidates)) == len(candidates)
    for hint in candidates[:3]:
        frames = predictor.predict(context, hint, 11, 1)
        assert frames.shape == (predictor.frames_per_call, 32, 48, 3) and frames.dtype == torch.uint8
        assert torch.equal(frames, predictor.predict(context, hint, 11, 1))  # deterministic
