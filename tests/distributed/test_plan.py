"""The plan is pure and deterministic: ids from source content and position, exclusive end frames."""

from __future__ import annotations

from fractions import Fraction

import pytest

from evc_archive.distributed.plan import SegmentPlan, SourceProbe, plan_segments, segment_key, segment_seed
from evc_archive.io.sources import content_fingerprint, video_id_for


def probe(name: str, frames: int, error: str | None = None) -> SourceProbe:
    return SourceProbe(f"/data/{name}.mp4", f"{name}-0123456789ab", frames, 64, 48, Fraction(25), error)


def test_segments_cover_every_frame_once_with_exclusive_ends():
    plans = plan_segments([probe("a", 20)], gop=8)
    assert [(p.start, p.end) for p in plans] == [(0, 8), (8, 16), (16, 20)]
    assert [p.frames for p in plans] == [8, 8, 4]
    assert [p.index for p in plans] == [0, 1, 2]
    assert [p.segment_id for p in plans] == ["a-0123456789ab/000000", "a-0123456789ab/000001",
                                             "a-0123456789ab/000002"]
    assert plans[1].object_key == "segments/a-0123456789ab/000001.evc" == segment_key("a-0123456789ab", 1)
    assert all((p.width, p.height, p.fps, p.source_uri) == (64, 48, Fraction(25), "/data/a.mp4") for p in plans)


@pytest.mark.parametrize("frames, gop, expected", [
    (8, 8, [(0, 8)]),  # exactly one GOP: no empty trailing segment
    (9, 8, [(0, 8), (8, 9)]),  # one frame left over
    (1, 30, [(0, 1)]),
    (3, 1, [(0, 1), (1, 2), (2, 3)]),
])
def test_segment_boundaries(frames, gop, expected):
    plans = plan_segments([probe("v", frames)], gop)
    assert [(p.start, p.end) for p in plans] == expected
    assert sum(p.frames for p in plans) == frames


def test_plan_is_deterministic_and_independent_of_probe_order():
    probes = [probe("b", 10), probe("a", 17), probe("c", 3)]
    first = plan_segments(probes, 4)
    assert plan_segments(list(reversed(probes)), 4) == first
    assert plan_segments(probes, 4) == first
    assert [p.video_id.split("-")[0] for p in first] == ["a"] * 5 + ["b"] * 3 + ["c"]
    assert len({p.segment_id for p in first}) == len(first)


def test_unusable_sources_give_no_segments():
    probes = [probe("bad", 0, error="not a video"), probe("empty", 0), probe("broken", 12, error="damaged"),
              probe("ok", 5)]
    assert [p.video_id for p in plan_segments(probes, 4)] == ["ok-0123456789ab"] * 2


def test_one_video_listed_twice_is_planned_once():
    """The same content under the same name (two folders, or one URI listed twice) is one video id:
    planning it twice would encode every segment twice and race two writers on each object."""
    a1 = SourceProbe("/x/clip.mp4", "clip-0123456789ab", 10, 64, 48, Fraction(25))
    a2 = SourceProbe("/a/clip.mp4", "clip-0123456789ab", 10, 64, 48, Fraction(25))
    b = probe("b", 4)
    for probes in ([a1, a2, b], [a2, b, a1], [b, a1, a1]):
        plans = plan_segments(probes, 4)
        assert [p.segment_id for p in plans] == ["b-0123456789ab/000000", "clip-0123456789ab/000000",
                                                 "clip-0123456789ab/000001", "clip-0123456789ab/000002"]
        assert {p.source_uri for p in plans if p.video_id.startswith("clip")} == {min(p.uri for p in probes
                                                                                     if p.video_id.startswith("clip"))}


def test_bad_gop_is_rejected():
    for gop in (0, -3):
        with pytest.raises(ValueError, match="gop"):
            plan_segments([probe("a", 5)], gop)


def test_plan_is_plain_data():
    p = plan_segments([probe("a", 5)], 4)[0]
    assert isinstance(p, SegmentPlan)
    with pytest.raises(Exception):
        p.start = 3  # frozen


def test_segment_seed_is_deterministic_and_spread():
    s = segment_seed(0, "a-0123456789ab/000000")
    assert s == segment_seed(0, "a-0123456789ab/000000")
    assert 0 <= s < 2**63  # fits the manifest's int64 seed column
    seeds = {segment_seed(base, f"v-0123456789ab/{i:06d}") for base in (0, 1, 7) for i in range(50)}
    assert len(seeds) == 150  # different job seeds and segments give different seeds
    assert segment_seed(1, "x/000000") != segment_seed(0, "x/000000")


def test_video_id_for_is_readable_and_safe():
    fp = "ab" * 32
    assert video_id_for("/data/clip.mp4", fp) == "clip-abababababab"
    assert video_id_for("s3://bucket/dir/clip.final.mkv", fp) == "clip.final-abababababab"
    assert video_id_for("/data/my clip (1)/ä b.mp4", fp) == "b-abababababab"  # unsafe runs -> "_", then stripped
    assert video_id_for("/data/x.mp4/", fp) == "x-abababababab"
    assert video_id_for("/data/.mp4", fp) == "mp4-abababababab"  # no leading dot: never a hidden folder
    assert video_id_for("/", fp) == "video-abababababab"
    long = video_id_for("/data/" + "n" * 100 + ".mp4", fp)
    assert long == "n" * 48 + "-abababababab"
    for vid in (video_id_for(u, fp) for u in ["/a/b c.mp4", "/a/-.mp4", "/a/../..mp4", "/a/$(rm).mp4"]):
        assert "/" not in vid and " " not in vid and not vid.startswith(".")


def test_content_fingerprint_names_content_not_names(tmp_path):
    a, b, c = tmp_path / "a.mp4", tmp_path / "b.mkv", tmp_path / "c.mp4"
    a.write_bytes(b"0123456789" * 100)
    b.write_bytes(b"0123456789" * 100)
    c.write_bytes(b"0123456789" * 100 + b"\0")
    fa = content_fingerprint(str(a))
    assert len(fa) == 64 and int(fa, 16) >= 0
    assert fa == content_fingerprint(str(b)) == content_fingerprint(f"file://{b}")
    assert fa != content_fingerprint(str(c))
    # Large files: the start and the end both count.
    big = bytearray(3 << 20)
    d = tmp_path / "d.mp4"
    d.write_bytes(bytes(big))
    fd = content_fingerprint(str(d))
    big[-1] = 1
    d.write_bytes(bytes(big))
    assert content_fingerprint(str(d)) != fd
    big[-1], big[0] = 0, 1
    d.write_bytes(bytes(big))
    assert content_fingerprint(str(d)) != fd
    # Same content under two names: same fingerprint, different (readable) video ids.
    assert video_id_for(str(a), fa) != video_id_for(str(b), fa)
    assert video_id_for(str(a), fa).endswith(fa[:12])


def test_a_video_too_large_for_a_worker_is_refused_with_a_reason():
    from evc_archive.distributed.plan import DEFAULT_WORKER_MEMORY_GIB, refuse_oversized, worker_memory_bytes

    small = SourceProbe("a.mp4", "a", 30, 640, 360, Fraction(25))
    huge = SourceProbe("b.mp4", "b", 30, 7680, 4320, Fraction(25))
    assert refuse_oversized(small, 4.0) == small
    refused = refuse_oversized(huge, 4.0)
    assert "7680x4320" in refused.error and "4 GiB" in refused.error and "\n" not in refused.error
    assert plan_segments([refused, small], 30) == plan_segments([small], 30)
    assert worker_memory_bytes(1920, 1080) < worker_memory_bytes(3840, 2160)
    full_hd = SourceProbe("c.mp4", "c", 30, 1920, 1080, Fraction(25))
    assert refuse_oversized(full_hd, DEFAULT_WORKER_MEMORY_GIB) == full_hd  # 1080p fits the default worker
