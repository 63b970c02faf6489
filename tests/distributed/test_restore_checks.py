"""Restore's completeness rules and naming (pure functions, no Ray)."""

from evc_archive.distributed.pipeline import _incomplete, group_videos, output_names


def _row(vid, index, start, end, status="ok", total=30, uri="/data/clip.mp4"):
    return {"video_id": vid, "segment_id": f"{vid}/{index:06d}", "segment_index": index, "start_frame": start,
            "end_frame": end, "status": status, "video_frames": total, "source_uri": uri, "error": "boom"}


def test_complete_video_restores():
    assert _incomplete([_row("v", 0, 0, 16), _row("v", 1, 16, 30)]) == ""


def test_unfinished_job_is_not_restored_as_a_shorter_video():
    problem = _incomplete([_row("v", 0, 0, 16)])  # segment 1 never got a row
    assert "only 16 of 30 frames" in problem


def test_gap_and_failed_segments_are_named():
    assert "missing" in _incomplete([_row("v", 0, 0, 10), _row("v", 2, 20, 30)])
    assert "failed" in _incomplete([_row("v", 0, 0, 16), _row("v", 1, 16, 30, status="failed")])


def test_rows_without_video_frames_fall_back_to_index_checks():
    rows = [dict(_row("v", 0, 0, 16), video_frames=None), dict(_row("v", 1, 16, 30), video_frames=None)]
    assert _incomplete(rows) == ""


def test_grouping_filters_and_names():
    rows = [_row("a-1", 1, 16, 30), _row("a-1", 0, 0, 16), _row("b-2", 0, 0, 30, uri="/x/clip.mp4"),
            {**_row("c-3", -1, 0, 0, status="failed"), "segment_index": -1}]
    videos = group_videos(rows)
    assert list(videos) == ["a-1", "b-2"] and [r["segment_index"] for r in videos["a-1"]] == [0, 1]
    assert list(group_videos(rows, "b-*")) == ["b-2"]
    names = output_names(videos, ".mkv")
    assert names == {"a-1": "clip.a-1.mkv", "b-2": "clip.b-2.mkv"}  # same source name: made unique
