"""The keyframe.ImageCodec contract, for every keyframe codec: any frame size round-trips to the
same size and dtype, and decoding the same payload twice gives the same frame."""

import pytest
import torch

from evc_archive.core.keyframes.av1_intra import AV1IntraCodec
from tests.conftest import moving_square_video


@pytest.fixture(params=["hyperprior", "hyperprior-int", "svtav1"])
def codec_and_quality(request, tiny_codec, tiny_int_codec):
    codecs = {"hyperprior": (tiny_codec, 1), "hyperprior-int": (tiny_int_codec, 1)}
    return codecs[request.param] if request.param in codecs else (AV1IntraCodec(), 5)


@pytest.mark.parametrize("size", [(48, 64), (33, 17), (1, 1), (70, 130)])
def test_round_trip_any_size(codec_and_quality, size):
    codec, quality = codec_and_quality
    h, w = size
    frame = moving_square_video(1, max(h, 24), max(w, 24))[0, :h, :w].contiguous()
    payload = codec.encode(frame, quality)
    out = codec.decode(payload, quality, h, w)
    assert out.shape == (h, w, 3) and out.dtype == torch.uint8
    assert torch.equal(out, codec.decode(payload, quality, h, w))  # decoding is repeatable
