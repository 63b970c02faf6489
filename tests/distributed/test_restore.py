"""restore and verify on a real local Ray cluster (2 CPUs), with the shipped default models: one
video per source, and drift / damaged / missing segments named (a local archive of two videos;
tests that change it work on a copy)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

import evc_archive.distributed.restore as restore_module
from evc_archive.core.errors import EVCError
from evc_archive.distributed.restore import RestoreConfig, restore, verify
from evc_archive.io.archive import group_videos
from evc_archive.io.manifest import append_rows, read_manifest
from evc_archive.io.store import Store
from tests.distributed.archived import NAMES, N, check_restored, copy_archive, video_ids

pytestmark = pytest.mark.slow


def test_restore_one_video_per_source(archived, corpus, tmp_path):
    arch, _, _ = archived
    rows = read_manifest(Store(str(arch)))
    seen = []
    reports = restore(RestoreConfig(str(arch), tmp_path / "all"), on_video=seen.append)
    assert [r["status"] for r in reports] == ["ok", "ok"] and len(seen) == 2
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == ["alpha.mkv", "beta.mkv"]
    for name in NAMES:
        mine = [r for r in rows if Path(r["source_uri"]).stem == name]
        check_restored(tmp_path / "all" / f"{name}.mkv", str(corpus / f"{name}.mp4"), mine, N, Fraction(25))

    # --videos: by source file name or by video id
    reports = restore(RestoreConfig(str(arch), tmp_path / "one", videos="bet*.mp4"))
    assert [r["video_id"] for r in reports] == [video_ids(rows)["beta"]]
    assert [p.name for p in (tmp_path / "one").iterdir()] == ["beta.mkv"]
    assert list(group_videos(rows, video_ids(rows)["alpha"])) == [video_ids(rows)["alpha"]]
    assert list(group_videos(rows, "*")) == sorted(video_ids(rows).values())
    with pytest.raises(EVCError, match="match 'gamma\\*'"):
        restore(RestoreConfig(str(arch), tmp_path / "none", videos="gamma*"))


def test_verify_names_drift_damaged_and_missing_segments(archived, tmp_path):
    arch = copy_archive(archived[0], tmp_path)
    store = Store(str(arch))
    rows = {f"{Path(r['source_uri']).stem}/{r['segment_index']}": r for r in read_manifest(store)}
    # flip one byte in the middle, flip the last byte, cut one in half, drop one, change a fingerprint
    for label, position in (("alpha/0", "middle"), ("alpha/1", "last")):
        path = arch / rows[label]["object_key"]
        data = bytearray(path.read_bytes())
        data[len(data) // 2 if position == "middle" else -1] ^= 0x40
        path.write_bytes(bytes(data))
    cut = arch / rows["alpha/2"]["object_key"]
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    (arch / rows["beta/0"]["object_key"]).unlink()
    drifted = list(rows["beta/1"]["frame_fingerprints"])
    assert len(drifted) == rows["beta/1"]["end_frame"] - rows["beta/1"]["start_frame"]
    drifted[3] = "0" * 16
    append_rows(store, [{**rows["beta/1"], "recon_fingerprint": "0" * 64, "frame_fingerprints": drifted,
                         "created_at": rows["beta/1"]["created_at"].replace(year=2100)}])

    seen = []
    results = verify(str(arch), on_segment=seen.append)
    status = {r["segment_id"]: r["status"] for r in results}
    assert len(seen) == len(results) == 6
    assert status == {rows["alpha/0"]["segment_id"]: "damaged", rows["alpha/1"]["segment_id"]: "damaged",
                      rows["alpha/2"]["segment_id"]: "damaged", rows["beta/0"]["segment_id"]: "missing",
                      rows["beta/1"]["segment_id"]: "drift", rows["beta/2"]["segment_id"]: "ok"}
    for r in results:
        assert "\n" not in r["detail"] and (r["detail"] or r["status"] == "ok")
    drift = next(r for r in results if r["status"] == "drift")
    start = rows["beta/1"]["start_frame"]
    assert drift["first_drift_frame"] == 3
    assert f"frame 3 of the segment (source frame {start + 3}) is the first that differs" in drift["detail"]
    assert not drift["float_models"] and "float" not in drift["detail"]  # the default decodes with integers only

    # restore never decodes damage into garbage: the damaged video fails, no file appears for it
    reports = {r["video_id"]: r for r in restore(RestoreConfig(str(arch), tmp_path / "out"))}
    assert reports[rows["alpha/0"]["video_id"]]["status"] == "failed"
    assert "\n" not in reports[rows["alpha/0"]["video_id"]]["error"]
    assert reports[rows["beta/0"]["video_id"]]["status"] == "failed"  # its object is gone
    assert list((tmp_path / "out").iterdir()) == []


def test_no_archive_to_restore_or_verify_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(restore_module, "init_ray", lambda *a, **k: pytest.fail("Ray started"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(EVCError, match="not an evc archive"):
        restore(RestoreConfig(str(tmp_path / "empty"), tmp_path / "out"))
    with pytest.raises(EVCError, match="not an evc archive"):
        verify(str(tmp_path / "empty"))
