"""The Parquet manifest: versioned Arrow schema, parts, dedup (ok beats failed, newest wins), compaction."""

from __future__ import annotations

import datetime as dt
import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evc_archive.core.errors import EVCError
from evc_archive.io import manifest
from evc_archive.io.manifest import (
    COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    append_rows,
    compact,
    latest_rows,
    part_keys,
    read_all_rows,
    read_manifest,
    rows_to_table,
)
from evc_archive.io.store import Store

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def row(video: str, index: int, status: str = "ok", seconds: int = 0, **extra) -> dict:
    r = {"segment_id": f"{video}/{index:06d}", "video_id": video, "source_uri": f"/data/{video}.mp4",
         "segment_index": index, "start_frame": index * 8, "end_frame": index * 8 + 8, "width": 64, "height": 48,
         "status": status, "created_at": T0 + dt.timedelta(seconds=seconds),
         "error": None if status == "ok" else "boom", "bytes": 100 + index}
    r.update(extra)
    return r


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(str(tmp_path / "arch"))


def test_schema_is_versioned_and_required_columns_are_not_null(store):
    assert SCHEMA.metadata[b"evc_archive.manifest_schema_version"] == str(SCHEMA_VERSION).encode()
    for name in ("segment_id", "video_id", "source_uri", "segment_index", "start_frame", "end_frame", "status",
                 "created_at"):
        assert not SCHEMA.field(name).nullable, name
    assert SCHEMA.field("created_at").type == pa.timestamp("us", tz="UTC")
    table = rows_to_table([row("a", 0)])
    assert table.schema.equals(SCHEMA, check_metadata=True)
    assert table.column("lpips_mean").to_pylist() == [None]  # missing keys become nulls
    with pytest.raises(pa.ArrowInvalid, match="segment_id"):
        append_rows(store, [{**row("a", 0), "segment_id": None}])  # a required column cannot be null
    assert part_keys(store) == [] and store.list("") == []  # and nothing was written


def test_append_and_read_round_trip(store):
    assert append_rows(store, []) is None and part_keys(store) == []
    key = append_rows(store, [row("b", 1), row("a", 0, "failed"), row("b", 0)])
    assert key.startswith("manifest/part-") and key.endswith(".parquet") and part_keys(store) == [key]
    pq_table = pq.read_table(io.BytesIO(store.read_bytes(key)))
    assert pq_table.schema.metadata[b"evc_archive.manifest_schema_version"] == str(SCHEMA_VERSION).encode()
    rows = read_manifest(store)
    assert [r["segment_id"] for r in rows] == ["a/000000", "b/000000", "b/000001"]  # by video, index
    assert set(rows[0]) == set(COLUMNS)
    assert rows[0]["status"] == "failed" and rows[0]["error"] == "boom"
    assert rows[2]["bytes"] == 101 and rows[2]["created_at"] == T0


def test_ok_beats_failed_and_newest_wins(store):
    append_rows(store, [row("a", 0, "ok", seconds=1, bytes=1), row("a", 1, "failed", seconds=1),
                        row("a", 2, "failed", seconds=1, error="first")])
    append_rows(store, [row("a", 0, "failed", seconds=5),  # newer failure does not hide the ok row
                        row("a", 1, "ok", seconds=6, bytes=2),  # retry succeeded
                        row("a", 2, "failed", seconds=7, error="second")])  # newest failure wins
    append_rows(store, [row("a", 0, "ok", seconds=9, bytes=3)])  # re-encoded: newest ok wins
    latest = {r["segment_id"]: r for r in read_manifest(store)}
    assert len(latest) == 3 and len(read_all_rows(store)) == 7
    assert (latest["a/000000"]["status"], latest["a/000000"]["bytes"]) == ("ok", 3)
    assert (latest["a/000001"]["status"], latest["a/000001"]["bytes"]) == ("ok", 2)
    assert (latest["a/000002"]["status"], latest["a/000002"]["error"]) == ("failed", "second")
    # order of the input does not matter
    rows = [row("x", 0, "ok", seconds=1, bytes=1), row("x", 0, "failed", seconds=2), row("x", 0, "ok", seconds=0)]
    for perm in (rows, rows[::-1], rows[1:] + rows[:1]):
        assert latest_rows(perm)["x/000000"]["bytes"] == 1


def test_compaction_leaves_one_part_with_the_same_rows(store):
    assert compact(store) is None
    only = append_rows(store, [row("a", 0)])
    assert compact(store) == only and part_keys(store) == [only]  # one part: nothing to do
    append_rows(store, [row("a", 0, "failed", seconds=3), row("a", 1)])
    append_rows(store, [row("b", 0, "failed")])
    before = read_manifest(store)
    key = compact(store)
    assert part_keys(store) == [key]
    assert read_manifest(store) == before
    assert len(read_all_rows(store)) == 3  # duplicates gone for good
    assert not [k for k in store.list("") if k.endswith(".part")]


def test_parts_written_between_reads_are_all_seen(store):
    """Part names sort in time order and never collide, even when written in the same instant."""
    keys = [append_rows(store, [row("v", i)]) for i in range(20)]
    assert len(set(keys)) == 20 and set(keys) == set(part_keys(store))
    assert len(read_manifest(store)) == 20


def test_other_files_in_manifest_folder_are_ignored(store):
    append_rows(store, [row("a", 0)])
    store.write_bytes("manifest/README.txt", b"hi")
    store.write_bytes("manifest/.part-x.parquet.abc.part", b"temp leftover")
    assert len(part_keys(store)) == 1 and len(read_manifest(store)) == 1


def test_newer_schema_version_is_a_clear_error(store):
    append_rows(store, [row("a", 0)])
    table = rows_to_table([row("a", 1)])
    table = table.replace_schema_metadata({"evc_archive.manifest_schema_version": str(SCHEMA_VERSION + 1)})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    store.write_bytes("manifest/part-29990101T000000000000Z-deadbeef.parquet", buf.getvalue())
    with pytest.raises(EVCError, match=rf"part-29990101T000000000000Z-deadbeef.parquet.*schema version {SCHEMA_VERSION + 1}"):
        read_manifest(store)
    with pytest.raises(EVCError):
        compact(store)


def test_older_part_without_newer_columns_still_reads(store):
    """A part that lacks optional columns (written by an earlier build) reads with them missing."""
    table = rows_to_table([row("a", 0)]).drop_columns(["device", "attempts"])
    buf = io.BytesIO()
    pq.write_table(table, buf)
    store.write_bytes(f"{manifest.MANIFEST_PREFIX}/part-20000101T000000000000Z-00000000.parquet", buf.getvalue())
    append_rows(store, [row("a", 1)])
    rows = read_manifest(store)
    assert [r["segment_id"] for r in rows] == ["a/000000", "a/000001"]
    compact(store)
    assert [r["segment_id"] for r in read_manifest(store)] == ["a/000000", "a/000001"]


def test_v1_parts_without_per_frame_columns_still_read(store):
    """An archive written before v2 (no frame_* columns) reads; the new columns are null, and a
    compaction of mixed parts writes them in the current schema."""
    v1_columns = [c for c in COLUMNS if not c.startswith("frame_")]
    old = rows_to_table([row("a", 0)]).select(v1_columns)
    old = old.replace_schema_metadata({"evc_archive.manifest_schema_version": "1"})
    buf = io.BytesIO()
    pq.write_table(old, buf)
    store.write_bytes("manifest/part-20000101T000000000000Z-00000001.parquet", buf.getvalue())
    append_rows(store, [row("a", 1, frame_lpips=[0.1, 0.2], frame_psnr=[30.0, 31.0], frame_coded=[True, False])])
    rows = {r["segment_id"]: r for r in read_manifest(store)}
    assert rows["a/000000"].get("frame_lpips") is None
    assert rows["a/000001"]["frame_coded"] == [True, False]
    assert rows["a/000001"]["frame_lpips"] == pytest.approx([0.1, 0.2])
    compact(store)
    assert len(part_keys(store)) == 1 and len(read_manifest(store)) == 2


def test_v3_parts_without_reported_metric_columns_still_read(store):
    """An archive written before v4 (no LPIPS-VGG or DISTS columns) reads with them null beside v4 rows."""
    vgg_columns = ("lpips_vgg_mean", "lpips_vgg_max", "frame_lpips_vgg", "dists_mean", "dists_max", "frame_dists")
    assert set(vgg_columns) <= set(COLUMNS)
    old = rows_to_table([row("a", 0, lpips_vgg_mean=0.5)]).select([c for c in COLUMNS if c not in vgg_columns])
    old = old.replace_schema_metadata({"evc_archive.manifest_schema_version": "3"})
    buf = io.BytesIO()
    pq.write_table(old, buf)
    store.write_bytes("manifest/part-20000101T000000000000Z-00000003.parquet", buf.getvalue())
    append_rows(store, [row("a", 1, lpips_vgg_mean=0.3, lpips_vgg_max=0.4, frame_lpips_vgg=[0.2, 0.4])])
    rows = {r["segment_id"]: r for r in read_manifest(store)}
    assert all(rows["a/000000"].get(c) is None for c in vgg_columns)
    assert rows["a/000001"]["lpips_vgg_mean"] == 0.3 and rows["a/000001"]["frame_lpips_vgg"] == pytest.approx([0.2, 0.4])
    compact(store)
    assert len(read_manifest(store)) == 2
