"""submit on a real local Ray cluster (2 CPUs), with the shipped default models: layout, resume,
settings checks, memory:// and S3 archives, bad input and unusable locations.

Corpora are tiny (2-21 videos, 1x1 to 48x32 px, 1-20 frames, GOP 8; one 4K frame, refused by size). One submit builds the shared
local archive; tests that change an archive work on a copy of it.
"""

from __future__ import annotations

import io
import uuid
from fractions import Fraction
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import evc_archive.distributed.restore as restore_module
import evc_archive.distributed.submit as submit_module
from evc_archive.core.errors import EVCError
from evc_archive.core.keyframes.av1_intra import AV1IntraCodec
from evc_archive.core.settings import EncoderSettings
from evc_archive.distributed.plan import segment_seed
from evc_archive.distributed.restore import RestoreConfig, restore, verify
from evc_archive.distributed.submit import SubmitConfig, submit
from evc_archive.io.archive import ARCHIVE_FORMAT, list_archive
from evc_archive.io.manifest import part_keys, read_all_rows, read_manifest
from evc_archive.io.store import Store, StoreError
from evc_archive.io.video_probe import probe_video
from tests.distributed.archived import (
    GOP,
    NAMES,
    SETTINGS,
    H,
    N,
    Recorder,
    W,
    check_restored,
    copy_archive,
    files,
    video_ids,
)
from tests.distributed.corpus import make_bad_corpus

pytestmark = pytest.mark.slow


# -- a local archive ----------------------------------------------------------------------------------
def test_submit_summary_layout_and_manifest(archived, corpus):
    arch, summary, events = archived
    assert (summary.videos, summary.segments_planned, summary.segments_skipped) == (2, 6, 0)
    assert (summary.segments_ok, summary.segments_failed, summary.failed_sources, summary.failures) == (6, 0, 0, [])
    assert summary.pixels == 2 * N * H * W and summary.bytes > 0
    assert len(events.rows) == 6 and len(events.plans) == 1

    store = Store(str(arch))
    rows = read_manifest(store)
    vids = video_ids(rows)
    assert sorted(vids) == list(NAMES)
    meta = store.read_json("archive.json")
    restore = meta["models"]["restore-int"]  # the default predictor's weights (the keyframe codec has none), with its card
    expected = {"archive.json"} | {f"models/{restore}{suffix}" for suffix in (".pt", ".md", ".loss.png")} | {
        f"segments/{vids[name]}/{i:06d}.evc" for name in NAMES for i in range(3)}
    listed = store.list("")
    manifest_parts = [k for k in listed if k.startswith("manifest/")]
    assert set(listed) - set(manifest_parts) == expected  # nothing else: no temp files, no write probes
    assert len(manifest_parts) == 1 and manifest_parts[0].endswith(".parquet")  # compacted
    assert not [p for p in arch.rglob("*") if ".part" in p.name or "probe" in p.name]

    assert meta["format"] == ARCHIVE_FORMAT and set(meta["models"]) == {"restore-int"}
    expected_params = {"lpips_threshold": 0.35, "quality": 4, "gop": GOP, "sampling_steps": 1, "seed": 0,
                       "predictor": "restore-hint-int", "keyframe_codec": "svtav1", "target_bpp": None}
    assert {k: meta["parameters"].get(k, "absent") for k in expected_params} == expected_params

    assert len(rows) == len(read_all_rows(store)) == 6
    total = 0
    for r in rows:
        name = Path(r["source_uri"]).stem
        assert r["source_uri"] == str(corpus / f"{name}.mp4") and r["status"] == "ok" and r["error"] is None
        assert (r["start_frame"], r["end_frame"]) == (r["segment_index"] * GOP, min(N, (r["segment_index"] + 1) * GOP))
        assert r["segment_id"] == f"{r['video_id']}/{r['segment_index']:06d}"
        assert r["object_key"] == f"segments/{r['video_id']}/{r['segment_index']:06d}.evc"
        assert r["bytes"] == store.size(r["object_key"]) > 0
        n = r["end_frame"] - r["start_frame"]
        assert r["bpp"] == pytest.approx(r["bytes"] * 8 / (n * W * H))
        assert (r["width"], r["height"], r["fps_num"], r["fps_den"]) == (W, H, 25, 1)
        assert r["seed"] == segment_seed(0, r["segment_id"])
        assert r["keyframe_model_sha256"] == AV1IntraCodec.content_hash.hex() and len(r["recon_fingerprint"]) == 64
        assert r["coded_frames"] >= 1 and r["coded_frames"] + r["generated_frames"] == n
        assert 0 <= r["lpips_mean"] <= r["lpips_max"] and r["psnr_mean"] >= r["psnr_min"] > 10
        assert r["attempts"] == 1 and r["device"] == "cpu" and r["predictor"] == "restore-hint-int"
        total += r["bytes"]
    assert summary.bytes == total
    assert summary.bpp == pytest.approx(total * 8 / (2 * N * H * W))


def test_rerun_skips_finished_work_and_reencodes_only_what_is_missing(archived, corpus, tmp_path):
    arch = copy_archive(archived[0], tmp_path)
    store = Store(str(arch))
    cfg = SubmitConfig(str(corpus), str(arch), SETTINGS, workers=2)
    before = files(arch)

    events = Recorder()
    summary = submit(cfg, events)
    assert (summary.segments_planned, summary.segments_skipped, summary.segments_ok, summary.segments_failed) == (6, 6, 0, 0)
    assert events.rows == []  # nothing encoded
    assert summary.bytes == archived[1].bytes and summary.pixels == archived[1].pixels
    assert files(arch) == before  # not one file rewritten: objects, models, archive.json, the manifest part

    rows = {r["segment_id"]: r for r in read_manifest(store)}
    victim = next(r for r in rows.values() if r["segment_index"] == 1)
    old_bytes = (arch / victim["object_key"]).read_bytes()
    (arch / victim["object_key"]).unlink()
    events = Recorder()
    summary = submit(cfg, events)
    assert (summary.segments_skipped, summary.segments_ok, summary.segments_failed) == (5, 1, 0)
    assert [r["segment_id"] for r in events.rows] == [victim["segment_id"]]
    assert (arch / victim["object_key"]).read_bytes() == old_bytes  # deterministic encoder: the same object
    after = files(arch)
    unchanged = {k for k in before if k.startswith(("segments/", "models/", "archive.json"))} - {victim["object_key"]}
    assert {k: after[k] for k in unchanged} == {k: before[k] for k in unchanged}
    assert len(part_keys(store)) == 1 and len(read_all_rows(store)) == 6  # never a duplicate row
    new = {r["segment_id"]: r for r in read_manifest(store)}
    assert new[victim["segment_id"]]["created_at"] > victim["created_at"]
    assert {k: v for k, v in new.items() if k != victim["segment_id"]} == {
        k: v for k, v in rows.items() if k != victim["segment_id"]}


@pytest.mark.parametrize("change", [dict(gop=16), dict(quality=3), dict(lpips_threshold=0.2), dict(seed=1),
                                    dict(predictor="diffusion-int"), dict(target_bpp=0.05),
                                    dict(keyframe_codec="hyperprior-int")])
def test_other_settings_on_an_existing_archive_are_refused(archived, corpus, monkeypatch, change):
    arch = archived[0]
    before = files(arch)
    monkeypatch.setattr(submit_module, "list_sources", lambda *a, **k: pytest.fail("work started"))
    monkeypatch.setattr(submit_module, "init_ray", lambda *a, **k: pytest.fail("work started"))
    settings = {k: v for k, v in change.items() if k in ("gop", "quality", "lpips_threshold", "seed")}
    other = {k: v for k, v in change.items() if k not in settings}
    cfg = SubmitConfig(str(corpus), str(arch), EncoderSettings(**{**dict(gop=GOP), **settings}), **other)
    with pytest.raises(EVCError, match="other settings") as info:
        submit(cfg)
    assert "\n" not in str(info.value)
    assert files(arch) == before


# -- memory:// -------------------------------------------------------------------------------------------
def test_memory_archive_routes_segments_through_the_driver(archived, corpus, tmp_path):
    url = f"memory://evc-{uuid.uuid4().hex[:8]}/arch"
    events = Recorder()
    summary = submit(SubmitConfig(str(corpus / "*.mp4"), url, SETTINGS, workers=2), events)
    assert (summary.segments_ok, summary.segments_failed) == (6, 0)
    assert any("driver" in m for m in events.logs)
    store = Store(url)
    rows = read_manifest(store)
    local = {r["segment_id"]: r for r in read_manifest(Store(str(archived[0])))}
    assert {r["segment_id"] for r in rows} == set(local)
    for r in rows:  # every object landed, whole, and is the same object a shared store gets
        assert store.read_bytes(r["object_key"]) == (archived[0] / r["object_key"]).read_bytes()
        assert r["bytes"] == store.size(r["object_key"])
        assert r["recon_fingerprint"] == local[r["segment_id"]]["recon_fingerprint"]
    assert sorted(k for k in store.list("") if k.startswith("segments/")) == sorted(local[s]["object_key"] for s in local)

    reports = restore(RestoreConfig(url, tmp_path / "out"))
    assert [r["status"] for r in reports] == ["ok", "ok"]
    for name in NAMES:
        mine = [r for r in rows if Path(r["source_uri"]).stem == name]
        check_restored(tmp_path / "out" / f"{name}.mkv", str(corpus / f"{name}.mp4"), mine, N, Fraction(25))
    # damage in a memory archive is found too (the driver hands the bytes to the workers)
    key = rows[0]["object_key"]
    data = bytearray(store.read_bytes(key))
    data[len(data) // 2] ^= 1
    store.write_bytes(key, bytes(data))
    status = {r["segment_id"]: r["status"] for r in verify(url)}
    assert status == {r["segment_id"]: "damaged" if r["object_key"] == key else "ok" for r in rows}


# -- bad input --------------------------------------------------------------------------------------------
def test_bad_input_becomes_failed_rows_and_good_videos_complete(ray_cluster, tmp_path):
    kinds = make_bad_corpus(tmp_path / "corpus")
    listing = tmp_path / "corpus.csv"
    lines = [f'"{uri}","{kind}"\n' for kind, (uri, _) in kinds.items()]
    listing.write_text("uri,comment\n" + "".join(lines + lines[:1]))  # one video listed twice: archived once
    arch = tmp_path / "arch"
    summary = submit(SubmitConfig(str(listing), str(arch), SETTINGS, workers=2))

    good = {k: v for k, v in kinds.items() if isinstance(v[1], int)}
    bad = {k: v for k, v in kinds.items() if isinstance(v[1], str)}
    assert len(kinds) == 21 and len(bad) == 12
    assert summary.videos == len(kinds)
    assert summary.failed_sources == len(bad) and summary.segments_failed == 0
    assert summary.segments_ok == summary.segments_planned == sum(-(-n // GOP) for _, n in good.values())
    assert sorted(u for u, _ in summary.failures) == sorted(u for u, _ in bad.values())

    rows = read_manifest(Store(str(arch)))
    by_uri: dict[str, list[dict]] = {}
    for r in rows:
        by_uri.setdefault(r["source_uri"], []).append(r)
    assert set(by_uri) == {u for u, _ in kinds.values()}
    for kind, (uri, reason) in bad.items():
        (r,) = by_uri[uri]
        assert (r["status"], r["segment_index"]) == ("failed", -1), kind
        assert reason in r["error"], (kind, r["error"])
        assert "\n" not in r["error"] and "Traceback" not in r["error"], kind
    for kind, (uri, frames) in good.items():
        segs = by_uri[uri]
        assert all(r["status"] == "ok" for r in segs), (kind, [r["error"] for r in segs])
        assert sum(r["end_frame"] - r["start_frame"] for r in segs) == frames, kind

    listed = {v["source_uri"]: v for v in list_archive(str(arch))}
    assert all(listed[u]["errors"] and listed[u]["segments_ok"] == 0 for u, _ in bad.values())
    assert all(listed[u]["frames"] == n and not listed[u]["errors"] for u, n in good.values())

    out = tmp_path / "out"
    reports = restore(RestoreConfig(str(arch), out))
    assert len(reports) == len(good) and all(r["status"] == "ok" for r in reports), reports
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{Path(u).stem}.mkv" for u, _ in good.values())
    for kind, (uri, frames) in good.items():
        source_info = probe_video(uri)
        check_restored(out / f"{Path(uri).stem}.mkv", uri, by_uri[uri], frames, source_info.fps)
    assert probe_video(out / "vfr.mkv").fps == Fraction(15) / Fraction(800, 1000)  # the mean rate of VFR_PTS
    assert probe_video(out / "tiny.mkv").width == probe_video(out / "tiny.mkv").height == 1
    assert (probe_video(out / "odd.mkv").width, probe_video(out / "odd.mkv").height) == (33, 17)


def test_no_videos_or_missing_source_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(submit_module, "init_ray", lambda *a, **k: pytest.fail("Ray started"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(EVCError, match="no video files found"):
        submit(SubmitConfig(str(tmp_path / "empty"), str(tmp_path / "a1"), SETTINGS))
    with pytest.raises(EVCError, match="does not exist"):
        submit(SubmitConfig(str(tmp_path / "nope"), str(tmp_path / "a2"), SETTINGS))


# -- S3 (moto server on loopback) -----------------------------------------------------------------------
def test_s3_corpus_to_s3_archive(archived, corpus, moto_s3, tmp_path):
    s3 = moto_s3.client
    bucket = f"evc-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    for p in corpus.iterdir():
        s3.put_object(Bucket=bucket, Key=f"videos/{p.name}", Body=p.read_bytes())
    opts = moto_s3.options()
    archive = f"s3://{bucket}/archive"
    cfg = SubmitConfig(f"s3://{bucket}/videos/", archive, SETTINGS, workers=2, storage_options=opts,
                       source_options=opts)
    summary = submit(cfg)
    assert (summary.videos, summary.segments_ok, summary.segments_failed, summary.failed_sources) == (2, 6, 0, 0)

    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="archive/")["Contents"])
    local = {r["segment_id"]: r for r in read_manifest(Store(str(archived[0])))}
    assert [k for k in keys if k.startswith("archive/segments/")] == sorted(f"archive/{r['object_key']}" for r in local.values())
    assert len([k for k in keys if k.startswith("archive/manifest/")]) == 1
    assert {k for k in keys if not k.startswith(("archive/segments/", "archive/manifest/"))} == {
        "archive/archive.json", *(f"archive/{k}" for k in Store(str(archived[0])).list("models"))}
    rows = read_manifest(Store(archive, opts))
    for r in rows:  # same content -> same video ids and the same objects as the local archive
        assert r["source_uri"].startswith(f"s3://{bucket}/videos/")
        body = s3.get_object(Bucket=bucket, Key=f"archive/{r['object_key']}")["Body"].read()
        assert body == (archived[0] / r["object_key"]).read_bytes()

    # an input manifest on S3 naming the same videos and one in a bucket that does not exist
    table = pa.table({"uri": [f"s3://{bucket}/videos/alpha.mp4", f"s3://{bucket}/videos/beta.mp4",
                              "s3://nonexistent-bucket/x.mp4"]})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    s3.put_object(Bucket=bucket, Key="lists/corpus.parquet", Body=buf.getvalue())
    summary = submit(SubmitConfig(f"s3://{bucket}/lists/corpus.parquet", archive, SETTINGS, workers=2,
                                  storage_options=opts, source_options=opts))
    assert (summary.segments_skipped, summary.segments_ok, summary.failed_sources) == (6, 0, 1)
    ((uri, error),) = summary.failures
    assert uri == "s3://nonexistent-bucket/x.mp4" and error.startswith("cannot read source") and "\n" not in error

    # an object deleted behind the archive's back (not through this process) is re-encoded, only it
    victim = next(r for r in rows if r["segment_index"] == 2)
    s3.delete_object(Bucket=bucket, Key=f"archive/{victim['object_key']}")
    summary = submit(cfg)
    assert (summary.segments_skipped, summary.segments_ok) == (5, 1)
    assert len(read_all_rows(Store(archive, opts))) == len(read_manifest(Store(archive, opts))) == 7  # + the probe row

    reports = restore(RestoreConfig(archive, tmp_path / "out", storage_options=opts))
    assert [r["status"] for r in reports] == ["ok", "ok"]
    for name in NAMES:
        mine = [r for r in rows if Path(r["source_uri"]).stem == name]
        check_restored(tmp_path / "out" / f"{name}.mkv", str(corpus / f"{name}.mp4"), mine, N, Fraction(25))
    assert [r["status"] for r in verify(archive, opts)] == ["ok"] * 6


def test_unusable_archive_locations_fail_before_any_work(corpus, moto_s3, tmp_path, monkeypatch):
    monkeypatch.setattr(submit_module, "list_sources", lambda *a, **k: pytest.fail("work started"))
    monkeypatch.setattr(submit_module, "init_ray", lambda *a, **k: pytest.fail("work started"))
    monkeypatch.setattr(restore_module, "init_ray", lambda *a, **k: pytest.fail("work started"))
    (tmp_path / "file.txt").write_text("x")
    bucket = f"evc-{uuid.uuid4().hex[:8]}"
    moto_s3.client.create_bucket(Bucket=bucket)
    cases = [(str(tmp_path / "file.txt" / "arch"), {}, "file.txt/arch"),
             ("s3://no-such-bucket-evc/arch", moto_s3.options(), "bucket does not exist"),
             (f"s3://{bucket}/arch", moto_s3.options("wrong", "wrong"), "Access Key"),
             ("nosuchproto://x/arch", {}, "nosuchproto")]
    for url, opts, reason in cases:
        moto_s3.require_credentials("wrong" in opts.get("key", ""))
        try:
            with pytest.raises(StoreError) as info:
                submit(SubmitConfig(str(corpus), url, SETTINGS, storage_options=opts))
        finally:
            moto_s3.require_credentials(False)
        text = str(info.value)
        assert url in text and reason in text and "\n" not in text and "Traceback" not in text, text
    assert "Contents" not in moto_s3.client.list_objects_v2(Bucket=bucket)  # nothing written
    for call in (lambda: restore(RestoreConfig("s3://no-such-bucket-evc/arch", tmp_path / "o",
                                               storage_options=moto_s3.options())),
                 lambda: verify("s3://no-such-bucket-evc/arch", moto_s3.options()),
                 lambda: list_archive("s3://no-such-bucket-evc/arch", moto_s3.options())):
        with pytest.raises(EVCError) as info:
            call()
        assert "no-such-bucket-evc" in str(info.value) and "\n" not in str(info.value)
