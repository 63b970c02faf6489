"""The segment worker in this process (no Ray): rate control's table and an encode at its choice,
loop or inter GOP, each stored, verified and described by its manifest row."""

from __future__ import annotations

from fractions import Fraction

import pytest

from evc_archive.core.decoder import open_stream
from evc_archive.core.loop import RESIDUAL_SEARCH
from evc_archive.core.dists import dists_frames, shared_dists
from evc_archive.core.lpips_vgg import lpips_vgg_frames, shared_lpips_vgg
from evc_archive.core.ratecontrol import choose_for_target
from evc_archive.core.settings import EncoderSettings
from evc_archive.distributed.plan import SegmentPlan
from evc_archive.distributed.worker import RETRYABLE_FIELD, EncodeJob, SegmentEncoder
from evc_archive.io.manifest import COLUMNS
from evc_archive.io.segment_decoder import SegmentDecoder
from tests.distributed.corpus import encode_video, smooth_frames

pytestmark = pytest.mark.slow
N, H, W = 10, 32, 48
TARGET = 0.1


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("worker")
    source = root / "clip.mp4"
    encode_video(source, smooth_frames(N, H, W, 3))
    plan = SegmentPlan("clip-x/000000", "clip-x", str(source), 0, 0, N, W, H, Fraction(25), N)
    settings = EncoderSettings(gop=N, residual_levels=2, inter_fallback=True)
    encoder = SegmentEncoder(EncodeJob(str(root / "arch"), settings, predictor="copy-last", target_bpp=TARGET))
    table = encoder.rd_table(plan, TARGET)  # rate control's pass 1, as a worker runs it
    return plan, encoder, SegmentDecoder(str(root / "arch"), model_files={}), table


def test_rd_table_holds_loop_and_inter_points(setup):
    *_, table = setup
    assert {p.inter for p in table} == {False, True}
    assert {p.residual_levels for p in table if not p.inter} == set(RESIDUAL_SEARCH)
    assert choose_for_target(table, TARGET).point.bpp <= TARGET


@pytest.mark.parametrize("inter", [False, True])
def test_a_carried_stream_and_a_second_encode_store_the_same_object(setup, inter):
    from dataclasses import replace

    plan, encoder, _, table = setup
    point = choose_for_target([p for p in table if p.inter == inter], TARGET).point
    assert point.stream is not None  # the best point within the target is on the Pareto front
    carried = encoder.encode(plan, point)
    carried_bytes = encoder.store.read_bytes(plan.object_key)
    encoded = encoder.encode(plan, replace(point, stream=None))
    assert carried["status"] == encoded["status"] == "ok"
    assert carried_bytes == encoder.store.read_bytes(plan.object_key)
    for column in ("bytes", "recon_fingerprint", "frame_fingerprints", "frame_psnr", "lpips_vgg_mean"):
        assert carried[column] == encoded[column], column
    assert carried["frame_lpips"] == pytest.approx(encoded["frame_lpips"], abs=1e-6)


@pytest.mark.parametrize("inter", [False, True])
def test_encode_at_a_chosen_point_stores_what_its_row_says(setup, inter):
    plan, encoder, decoder, table = setup
    point = choose_for_target([p for p in table if p.inter == inter], TARGET).point
    row = encoder.encode(plan, point)
    assert row["status"] == "ok", row.get("error")
    assert set(row) <= set(COLUMNS) | {RETRYABLE_FIELD}
    assert row["bytes"] == point.bytes and abs(row["lpips_mean"] - point.lpips) < 1e-6
    assert row["segment_mode"] == ("inter" if inter else "loop")
    assert row["residual_levels"] == (None if inter else point.residual_levels)
    assert (row["coded_frames"] == N) if inter else (row["coded_frames"] == point.coded)
    assert decoder.verify(row)["status"] == "ok"  # the stored object decodes to the fingerprint
    # LPIPS-VGG of the stored object's reconstruction against the source, one value per frame
    decoded = next(open_stream(encoder.store.read_bytes(plan.object_key), encoder.verify_library).segments())
    source = encoder._read(plan)
    expected = lpips_vgg_frames(shared_lpips_vgg(), decoded, source)
    assert row["frame_lpips_vgg"] == pytest.approx(expected.tolist(), abs=1e-5) and len(expected) == N
    assert row["lpips_vgg_mean"] == pytest.approx(float(expected.mean()), abs=1e-6)
    assert row["lpips_vgg_max"] == pytest.approx(float(expected.max()), abs=1e-6)
    assert row["lpips_vgg_mean"] != pytest.approx(row["lpips_mean"], abs=1e-4)  # not AlexNet's value
    dists = dists_frames(shared_dists(), decoded, source)
    assert row["frame_dists"] == pytest.approx(dists.tolist(), abs=1e-5)
    assert row["dists_mean"] == pytest.approx(float(dists.mean()), abs=1e-6)
    assert row["dists_max"] == pytest.approx(float(dists.max()), abs=1e-6)
