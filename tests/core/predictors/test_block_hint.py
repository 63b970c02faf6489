from fractions import Fraction

import numpy as np
import pytest
import torch

from evc_archive.core.decoder import open_stream
from evc_archive.core.encoder import encode_video
from evc_archive.core.errors import BitstreamError
from evc_archive.core.keyframes.av1_intra import AV1IntraCodec
from evc_archive.core.model_library import ModelLibrary
from evc_archive.core.predictors.block_hint import (
    BlockMotionHintPredictor,
    grid_shape,
    pack_field,
    pack_global,
    unpack_hint,
)
from evc_archive.core.ratecontrol import SegmentSimulator
from evc_archive.core.registry import PREDICTORS
from evc_archive.core.settings import EncoderSettings


def sprite_video(n: int = 12, h: int = 64, w: int = 64) -> torch.Tensor:
    """(n,h,w,3) uint8: a still textured background with a large textured sprite (a fifth of the
    frame) moving right 1 px a frame: local motion, which no global velocity follows."""
    rng = np.random.default_rng(5)
    bg = np.kron(rng.integers(0, 256, (h // 8, w // 8, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    sprite = np.kron(rng.integers(0, 256, (8, 6, 3)), np.ones((4, 4, 1))).astype(np.uint8)  # 32 x 24
    frames = []
    for t in range(n):
        f = bg.copy()
        f[16:48, 8 + t:32 + t] = sprite
        frames.append(f)
    return torch.from_numpy(np.stack(frames))


def test_hint_coding_round_trips_and_rejects_damage():
    field = np.zeros((3, 4, 2), dtype=np.int64)
    field[1, 2] = (-3, 8)
    hint = pack_field(field)
    assert len(hint) == 1 + 2 + 2 and np.array_equal(unpack_hint(hint, 3, 4), field)
    assert pack_field(np.zeros((3, 4, 2), dtype=np.int64)) == b"" and not unpack_hint(b"", 3, 4).any()
    assert (unpack_hint(pack_global(2, -5), 3, 4) == (2, -5)).all()
    for bad in (hint[:-1], hint + b"\x00", b"\x07", hint[:2]):
        with pytest.raises(BitstreamError):
            unpack_hint(bad, 3, 4)


def test_grid_is_about_four_blocks_along_the_long_side():
    assert grid_shape(128, 128) == (1, 32, 4, 4)
    assert grid_shape(48, 64) == (1, 16, 3, 4)
    s, b, nby, nbx = grid_shape(1080, 1920)
    assert s == 12 and nbx == 4 and nby == 3


def test_a_block_field_follows_local_motion_and_round_trips(lpips_metric):
    """A sprite moving over a still background: the field candidate wins, the loop codes fewer
    frames than with copy-last, and the stream decodes bit-exactly from (id, hash) alone."""
    video = sprite_video(12)
    predictor = BlockMotionHintPredictor()
    context, targets = video[:1], video[1:5]
    candidates = predictor.hint_candidates(context, targets)
    assert any(c[:1] == b"\x02" for c in candidates)
    scores = {c: float(lpips_metric.uint8(predictor.predict(context, c, 0, 1), targets).mean()) for c in candidates}
    best = min(scores, key=scores.get)
    assert best[:1] == b"\x02" and scores[best] < 0.8 * scores[b""]
    codec = AV1IntraCodec()
    settings = EncoderSettings(lpips_threshold=0.03, quality=11, gop=12)
    enc = encode_video([video], Fraction(25), codec, predictor, lpips_metric, settings)
    copy = encode_video([video], Fraction(25), codec, ModelLibrary().predictor_named("copy-last"), lpips_metric, settings)
    assert sum(enc.stream.segments[0].coded) < sum(copy.stream.segments[0].coded)
    assert PREDICTORS.named("block-hint").kind_id == 4 and PREDICTORS.by_id(4).label == "block-motion-hint"
    decoded = next(open_stream(enc.data, ModelLibrary()).segments())
    assert torch.equal(decoded, enc.results[0].reconstruction)
    sim = SegmentSimulator(video, codec, predictor, lpips_metric, settings)
    assert sim.run(settings.quality, settings.lpips_threshold).bytes == len(enc.data)
