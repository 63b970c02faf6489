"""The restore-hint predictors: motion-hint over the restored last frame (integer model: kind 7,
float: 6 and 5); streams name their weights file by hash and decode bit-exactly; rate control's
simulation agrees with the real encode."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from evc_archive.core.decoder import open_stream
from evc_archive.core.encoder import encode_video
from evc_archive.core.errors import ModelMismatchError
from evc_archive.core.keyframes.av1_intra import AV1IntraCodec
from evc_archive.core.model_library import ModelLibrary
from evc_archive.core.predictors.motion_hint import GlobalMotionPredictor, pack_velocity
from evc_archive.core.predictors.restore_hint import (
    AS_DECODED,
    HALFWAY,
    KINDS,
    RESTORED,
    RestoreHintPredictor,
    pack_hint,
    unpack_hint,
)
from evc_archive.core.ratecontrol import SegmentSimulator
from evc_archive.core.registry import PREDICTORS, model_files_for
from evc_archive.core.restore import RestoreNet, Restorer
from evc_archive.core.settings import EncoderSettings
from evc_archive.training.restore_quantize import quantize
from evc_archive.core.int_restore import IntRestorer
from tests.core.predictors.test_motion_hint import panning_video
from tests.core.test_int_restore import int_restorer
from tests.core.test_restore import TINY, random_restorer


def test_hint_coding():
    assert pack_hint(RESTORED, b"") == b""  # the common case costs nothing
    assert pack_hint(AS_DECODED, b"") == b"\x01"
    for mode in (RESTORED, AS_DECODED, HALFWAY):
        for motion in (b"", pack_velocity(0, 5), pack_velocity(-3, 0)):
            assert unpack_hint(pack_hint(mode, motion)) == (mode, motion)
    with pytest.raises(Exception, match="unknown"):
        unpack_hint(b"\x03")
    with pytest.raises(Exception, match="unknown"):  # kind 5 has no halfway mode
        unpack_hint(b"\x02", KINDS[5].modes)


def identity_restorer(path, integer: bool) -> Restorer | IntRestorer:
    """A fresh (identity) restoration model in the float or integer format."""
    if integer:
        IntRestorer.save(path, quantize(RestoreNet(TINY), TINY, torch.zeros(1, 8, 8, 3, dtype=torch.uint8)))
        return IntRestorer.load(path)
    Restorer.save(path, TINY, RestoreNet(TINY))
    return Restorer.load(path)


@pytest.mark.parametrize("kind, interpolation", [(5, "bilinear"), (6, "lanczos3"), (7, "lanczos3")])
def test_identity_restorer_gives_motion_hint_exactly(tmp_path, kind, interpolation):
    p = RestoreHintPredictor(identity_restorer(tmp_path / "id.pt", KINDS[kind].integer), frames_per_call=3,
                             model_id=kind)
    m = GlobalMotionPredictor(frames_per_call=3, interpolation=interpolation, fit_every_target=kind != 5)
    video = panning_video()
    for motion in (b"", pack_velocity(2, -5)):
        for mode in KINDS[kind].modes:
            assert torch.equal(p.predict(video[:2], pack_hint(mode, motion), 0, 1), m.predict(video[:2], motion, 0, 1))
    motion = m.hint_candidates(video[:1], video[1:4])
    assert len(motion) > 1
    assert p.hint_candidates(video[:1], video[1:4]) == [pack_hint(mode, h) for mode in KINDS[kind].modes
                                                         for h in motion]


def test_prediction_moves_the_restored_frame(tmp_path):
    restorer = random_restorer(tmp_path / "r.pt")
    p = RestoreHintPredictor(restorer, frames_per_call=2, model_id=6)
    video = panning_video()
    still = p.predict(video[:1], b"", seed=0, steps=1)
    assert torch.equal(still[0], restorer(video[:1])[0]) and torch.equal(still[1], still[0])
    motion = GlobalMotionPredictor(frames_per_call=2, interpolation="lanczos3")
    moved = p.predict(video[:1], pack_hint(RESTORED, pack_velocity(0, 8)), 0, 1)
    assert torch.equal(moved, motion.predict(restorer(video[:1]), pack_velocity(0, 8), 0, 1))
    plain = p.predict(video[:1], pack_hint(AS_DECODED, pack_velocity(0, 8)), 0, 1)
    assert torch.equal(plain, motion.predict(video[:1], pack_velocity(0, 8), 0, 1))
    half = p.predict(video[:1], pack_hint(HALFWAY, b""), 0, 1)[0].to(torch.int16)
    assert torch.equal(half, (restorer(video[:1])[0].to(torch.int16) + video[0] + 1) // 2)
    # kind 5 moves bilinearly: same whole-pixel frames, other quarter-pixel ones
    first = RestoreHintPredictor(restorer, frames_per_call=2, model_id=5)
    assert torch.equal(first.predict(video[:1], pack_hint(RESTORED, pack_velocity(0, 4)), 0, 1),
                       p.predict(video[:1], pack_hint(RESTORED, pack_velocity(0, 4)), 0, 1))
    assert not torch.equal(first.predict(video[:1], pack_hint(RESTORED, pack_velocity(1, 3)), 0, 1),
                           p.predict(video[:1], pack_hint(RESTORED, pack_velocity(1, 3)), 0, 1))
    with pytest.raises(ValueError, match="unknown"):
        RestoreHintPredictor(restorer, model_id=3)
    with pytest.raises(ValueError, match="integer"):  # kind 7 (the default) runs the integer model only
        RestoreHintPredictor(restorer)
    _, int_model = int_restorer(tmp_path / "r-int.pt")
    with pytest.raises(ValueError, match="float"):
        RestoreHintPredictor(int_model, model_id=6)
    seven = RestoreHintPredictor(int_model, frames_per_call=2)
    assert torch.equal(seven.predict(video[:1], pack_hint(RESTORED, pack_velocity(0, 8)), 0, 1),
                       motion.predict(int_model(video[:1]), pack_velocity(0, 8), 0, 1))


def test_encoder_turns_restoration_off_where_it_hurts(tmp_path, lpips_metric):
    """A restorer that only damages frames: every call picks the decoded frame, so the loop codes the
    same frames as motion-hint (moved the same way) and spends one byte per call on saying so."""
    from evc_archive.core.encoder import predict_call
    from evc_archive.core.hint_search import HintSearch
    from evc_archive.core.settings import SEARCHES
    from evc_archive.core.source_scores import SourceScores

    torch.manual_seed(0)
    net = RestoreNet(TINY)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.5)
    Restorer.save(tmp_path / "bad.pt", TINY, net)
    predictor = RestoreHintPredictor(Restorer.load(tmp_path / "bad.pt"), frames_per_call=3, model_id=6)
    video = panning_video(8)[:4]
    motion = GlobalMotionPredictor(frames_per_call=3, interpolation="lanczos3", fit_every_target=True)
    for policy in SEARCHES:
        scores, hints = SourceScores(lpips_metric, video), HintSearch(policy, video)
        _, restore_scores, hint = predict_call(predictor, scores, hints, video[:1], 0, 1, 1)
        _, motion_scores, motion_hint = predict_call(motion, scores, hints, video[:1], 0, 1, 1)
        assert unpack_hint(hint) == (AS_DECODED, motion_hint)
        assert torch.allclose(restore_scores, motion_scores)


@pytest.mark.parametrize("kind", [7, 6, 5])
def test_stream_names_the_weights_and_decodes_bit_exactly(tmp_path, lpips_metric, kind):
    """Every kind: the default (7), its float parent (6) and the decode-only kind 5, whose archives
    must still decode."""
    models = tmp_path / "models"
    models.mkdir()
    if KINDS[kind].integer:
        _, restorer = int_restorer(models / "restore-tiny-int.pt")
    else:
        restorer = random_restorer(models / "restore-tiny.pt")
    predictor = RestoreHintPredictor(restorer, model_id=kind)
    video = panning_video(12)
    codec = AV1IntraCodec()
    settings = EncoderSettings(lpips_threshold=0.08, quality=7, gop=12, sampling_steps=1, seed=0, residual_levels=2)
    enc = encode_video([video], Fraction(25), codec, predictor, lpips_metric, settings)
    header = enc.stream.header
    assert header.predictor_model_id == kind
    assert PREDICTORS.named("restore-hint-int").kind_id == 7 and PREDICTORS.by_id(7).label == "restore-motion-hint-int"
    assert PREDICTORS.named("restore-hint").kind_id == 6 and PREDICTORS.by_id(6).label == "restore-motion-hint-lanczos"
    assert PREDICTORS.named("restore-hint-bilinear").kind_id == 5 and PREDICTORS.by_id(5).label == "restore-motion-hint"
    assert header.predictor_hash == restorer.content_hash[:len(header.predictor_hash)]
    decoded = next(open_stream(enc.data, ModelLibrary(extra_dirs=(models,))).segments())
    assert torch.equal(decoded, enc.results[0].reconstruction)
    sim = SegmentSimulator(video, codec, RestoreHintPredictor(restorer, model_id=kind), lpips_metric, settings)
    assert sim.run(settings.quality, settings.lpips_threshold, settings.residual_levels).bytes == len(enc.data)
    with pytest.raises(ModelMismatchError, match="not available"):  # without the weights file
        next(open_stream(enc.data, ModelLibrary()).segments())


def test_archives_carry_the_weights_file():
    assert model_files_for("svtav1", "restore-hint") == ["restore.pt"] == model_files_for("svtav1", "restore-hint-bilinear")
    assert model_files_for("svtav1", "restore-hint-int") == ["restore-int.pt"]
    assert model_files_for("svtav1", "motion-hint") == []
    assert model_files_for("hyperprior", "diffusion") == ["keyframe.pt", "predictor.pt"]
