"""A segment to a target: search, choose, encode, check bytes (core.segment_coding)."""

from dataclasses import replace
from fractions import Fraction

import pytest
import torch

from evc_archive.core.bitstream import unpack
from evc_archive.core.decoder import open_stream
from evc_archive.core.keyframes.av1_intra import AV1IntraCodec
from evc_archive.core.metrics import score_frames
from evc_archive.core.model_library import ModelLibrary
from evc_archive.core.predictors.copy_last import CopyLastFramePredictor
from evc_archive.core.segment_coding import SegmentCoder, encode_at, encode_to_target, search_points
from evc_archive.core.settings import SEARCHES, EncoderSettings
from tests.conftest import moving_square_video

TARGET = 0.3


@pytest.fixture(scope="module")
def coder(lpips_metric):
    return SegmentCoder(AV1IntraCodec(), CopyLastFramePredictor(frames_per_call=3), lpips_metric, Fraction(25))


def _library(coder: SegmentCoder) -> ModelLibrary:
    library = ModelLibrary()
    library.register(coder.codec)
    library.register(coder.predictor)
    return library


def test_encode_to_target_meets_it_and_decodes(coder):
    frames = moving_square_video(8, 32, 48)
    coded = encode_to_target(coder, frames, EncoderSettings.product(gop=8), TARGET, first_frame=16)
    assert coded.point is not None and coded.note == "" and coded.bpp <= TARGET
    assert len(coded.data) == coded.point.bytes and coded.settings == coded.point.settings(EncoderSettings.product(gop=8))
    assert unpack(coded.data).header.first_frame == 16
    decoded = next(open_stream(coded.data, _library(coder)).segments())
    assert torch.equal(decoded, coded.result.reconstruction)


@pytest.mark.parametrize("search", SEARCHES)
def test_every_searched_point_encodes_to_its_bytes(coder, search):
    frames = moving_square_video(8, 32, 48)
    settings = EncoderSettings.product(gop=8, search=search)
    points = search_points(coder, frames, settings, TARGET, first_frame=8)
    assert {p.inter for p in points} == {False, True}
    for point in points[:: max(1, len(points) // 4)]:
        assert len(encode_at(coder, frames, settings, 8, replace(point, stream=None)).data) == point.bytes


def test_a_carried_stream_is_the_encoders_and_decodes_to_what_was_simulated(coder):
    frames = moving_square_video(8, 32, 48)
    settings = EncoderSettings.product(gop=8, search="fast")
    points = search_points(coder, frames, settings, TARGET, first_frame=8)
    carried = [p for p in points if p.stream is not None]
    assert carried and {p.inter for p in carried} == {False, True}
    for point in carried:
        reused = encode_at(coder, frames, settings, 8, point)
        encoded = encode_at(coder, frames, settings, 8, replace(point, stream=None))
        assert reused.decoded and not encoded.decoded and reused.data == encoded.data
        assert torch.equal(reused.result.reconstruction, encoded.result.reconstruction)
        assert torch.allclose(reused.result.lpips, encoded.result.lpips)
        assert torch.equal(reused.result.psnr.double(), encoded.result.psnr.double())
    # another first frame changes the header: the stream is not this encode's, so it is encoded again
    assert not encode_at(coder, frames, settings, 0, carried[0]).decoded


def test_a_carried_stream_that_decodes_to_other_frames_is_refused(coder):
    frames = moving_square_video(8, 32, 48)
    settings = EncoderSettings.product(gop=8)
    point = next(p for p in search_points(coder, frames, settings, TARGET) if p.stream is not None)
    wrong = replace(point, stream=replace(point.stream, reconstruction_sha256="0" * 64))
    with pytest.raises(RuntimeError, match="other frames than it simulated"):
        encode_at(coder, frames, settings, 0, wrong)


def test_a_point_that_does_not_match_the_encode_is_refused(coder):
    frames = moving_square_video(8, 32, 48)
    settings = EncoderSettings.product(gop=8)
    point = search_points(coder, frames, settings, TARGET)[0]
    with pytest.raises(RuntimeError, match="rate control measured"):
        encode_at(coder, frames, settings, 0, replace(point, bytes=point.bytes + 1, stream=None))


def test_an_unknown_search_is_refused(coder):
    with pytest.raises(ValueError, match="unknown"):
        search_points(coder, moving_square_video(4, 32, 48), EncoderSettings.product(search="nearest"), TARGET)


def test_the_loop_scores_at_its_pixel_budget_and_the_coded_segment_reports_full_size(coder):
    frames = moving_square_video(6, 64, 96, seed=2)
    settings = EncoderSettings.product(gop=6, scoring_pixels=32 * 48)  # the loop scores 2x downscaled
    coded = encode_to_target(coder, frames, settings, TARGET)
    exact = score_frames(coder.metric, coded.result.reconstruction, frames)
    assert torch.allclose(coded.lpips, exact, atol=1e-6)
    assert coded.point.lpips == pytest.approx(float(coded.result.lpips.mean()), abs=1e-6)  # the loop's proxy
    assert not torch.allclose(coded.result.lpips, exact, atol=1e-4)
