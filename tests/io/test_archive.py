"""The archive without Ray: archive.json and the model files a job needs, grouping manifest rows
into videos, their output names, and restore's completeness rules (pure functions)."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from evc_archive.core.model_library import shipped_model_dir
from evc_archive.core.registry import KEYFRAME_CODECS, PREDICTORS
from evc_archive.core.settings import EncoderSettings
from evc_archive.distributed.submit import SubmitConfig, _archive_params
from evc_archive.io.archive import group_videos, incomplete, output_names, prepare_archive
from evc_archive.io.store import Store

SETTINGS = EncoderSettings(gop=8)


@pytest.mark.slow
@pytest.mark.parametrize("codec, predictor, files", [("svtav1", "copy-last", set()), ("hyperprior", "copy-last", {"keyframe"}),
                                                     ("svtav1", "diffusion", {"predictor"}), ("hyperprior", "motion", {"keyframe"}),
                                                     ("svtav1", "restore-hint", {"restore"}),
                                                     ("svtav1", "restore-hint-int", {"restore-int"}),
                                                     ("svtav1", "diffusion-int", {"predictor-int"}),
                                                     ("hyperprior-int", "copy-last", {"keyframe-int"})])
def test_archive_keeps_exactly_the_model_files_it_needs(codec, predictor, files):
    store = Store(f"memory://evc-models-{uuid.uuid4().hex}")
    cfg = SubmitConfig("unused", store.url, SETTINGS, predictor, keyframe_codec=codec)
    prepare_archive(store, _archive_params(cfg), cfg.keyframe_codec, cfg.predictor)
    meta = store.read_json("archive.json")
    assert set(meta["models"]) == files and meta["parameters"]["keyframe_codec"] == codec
    names = {"keyframe": KEYFRAME_CODECS.named("hyperprior").weight_file,
             "keyframe-int": KEYFRAME_CODECS.named("hyperprior-int").weight_file, "predictor": PREDICTORS.named("diffusion").weight_file,
             "restore": PREDICTORS.named("restore-hint").weight_file,
             "restore-int": PREDICTORS.named("restore-hint-int").weight_file,
             "predictor-int": PREDICTORS.named("diffusion-int").weight_file}
    for kind in files:
        data = (shipped_model_dir() / names[kind]).read_bytes()
        assert meta["models"][kind] == hashlib.sha256(data).hexdigest()
        assert store.read_bytes(f"models/{meta['models'][kind]}.pt") == data
        card = shipped_model_dir() / names[kind].replace(".pt", ".md")
        assert store.read_bytes(f"models/{meta['models'][kind]}.md") == card.read_bytes()  # the card travels too


def test_output_names_and_video_groups():
    def r(uri, vid, index):
        return {"source_uri": uri, "video_id": vid, "segment_index": index, "segment_id": f"{vid}/{index}"}

    rows = [r("/a/clip.mp4", "clip-111111111111", 1), r("/a/clip.mp4", "clip-111111111111", 0),
            r("/b/clip.mp4", "clip-222222222222", 0), r("s3://bkt/v/other.webm", "other-333333333333", 0),
            r("/bad/broken.mp4", "broken-444444444444", -1)]  # a failed probe row: not a video to restore
    videos = group_videos(rows)
    assert list(videos) == ["clip-111111111111", "clip-222222222222", "other-333333333333"]
    assert [x["segment_index"] for x in videos["clip-111111111111"]] == [0, 1]
    # the source's name; the video id added only where two sources share a name
    assert output_names(videos, ".mkv") == {"clip-111111111111": "clip.clip-111111111111.mkv",
                                            "clip-222222222222": "clip.clip-222222222222.mkv",
                                            "other-333333333333": "other.mkv"}
    assert list(group_videos(rows, "other.webm")) == ["other-333333333333"]
    assert list(group_videos(rows, "clip-2*")) == ["clip-222222222222"]
    assert group_videos(rows, "broken*") == {}


def _row(vid, index, start, end, status="ok", total=30, uri="/data/clip.mp4"):
    return {"video_id": vid, "segment_id": f"{vid}/{index:06d}", "segment_index": index, "start_frame": start,
            "end_frame": end, "status": status, "video_frames": total, "source_uri": uri, "error": "boom"}


def test_complete_video_restores():
    assert incomplete([_row("v", 0, 0, 16), _row("v", 1, 16, 30)]) == ""


def test_unfinished_job_is_not_restored_as_a_shorter_video():
    problem = incomplete([_row("v", 0, 0, 16)])  # segment 1 never got a row
    assert "only 16 of 30 frames" in problem


def test_gap_and_failed_segments_are_named():
    assert "missing" in incomplete([_row("v", 0, 0, 10), _row("v", 2, 20, 30)])
    assert "failed" in incomplete([_row("v", 0, 0, 16), _row("v", 1, 16, 30, status="failed")])


def test_rows_without_video_frames_fall_back_to_index_checks():
    rows = [dict(_row("v", 0, 0, 16), video_frames=None), dict(_row("v", 1, 16, 30), video_frames=None)]
    assert incomplete(rows) == ""


def test_grouping_filters_and_names():
    rows = [_row("a-1", 1, 16, 30), _row("a-1", 0, 0, 16), _row("b-2", 0, 0, 30, uri="/x/clip.mp4"),
            {**_row("c-3", -1, 0, 0, status="failed"), "segment_index": -1}]
    videos = group_videos(rows)
    assert list(videos) == ["a-1", "b-2"] and [r["segment_index"] for r in videos["a-1"]] == [0, 1]
    assert list(group_videos(rows, "b-*")) == ["b-2"]
    names = output_names(videos, ".mkv")
    assert names == {"a-1": "clip.a-1.mkv", "b-2": "clip.b-2.mkv"}  # same source name: made unique


def test_list_archive_means_lpips_vgg_only_where_every_segment_has_it(tmp_path):
    import datetime as dt

    from evc_archive.io.archive import list_archive
    from evc_archive.io.manifest import append_rows

    store = Store(str(tmp_path))
    store.write_bytes("archive.json", b"{}")
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)

    def row(vid, index, vgg):
        return {**_row(vid, index, index * 8, index * 8 + 8, total=16), "error": None, "width": 4, "height": 4,
                "bytes": 10, "lpips_mean": 0.1, "lpips_vgg_mean": vgg, "dists_mean": vgg and vgg / 2, "created_at": t0}

    append_rows(store, [row("new", 0, 0.2), row("new", 1, 0.4), row("mixed", 0, 0.3), row("mixed", 1, None)])
    listed = {v["video_id"]: v for v in list_archive(str(tmp_path))}
    assert listed["new"]["lpips_vgg_mean"] == pytest.approx(0.3) and listed["new"]["dists_mean"] == pytest.approx(0.15)
    assert listed["mixed"]["lpips_vgg_mean"] is None  # a v3 segment among them: no mean of a subset
    assert listed["mixed"]["dists_mean"] is None
    assert listed["new"]["lpips_mean"] == pytest.approx(0.1)
