"""The driver's restore and verify: decode an archive's segments on Ray actors (one per GPU, else
per CPU), into one video per source, or against each segment's fingerprint."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from evc_archive.core.errors import EVCError
from evc_archive.distributed.ray_pool import decoder_actors, gather, init_ray
from evc_archive.io.archive import group_videos, incomplete, open_archive, output_names


@dataclass(frozen=True)
class RestoreConfig:
    archive: str
    out_dir: Path
    videos: str | None = None  # glob over video ids and source file names
    workers: int | None = None
    address: str | None = None
    storage_options: dict[str, Any] = field(default_factory=dict)
    extension: str = ".mkv"
    crf: int | None = None


def restore(cfg: RestoreConfig, on_video: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Decode every (selected) video of an archive into cfg.out_dir, one file per source."""
    store, rows = open_archive(cfg.archive, cfg.storage_options)
    videos = group_videos(rows, cfg.videos)
    if not videos:
        raise EVCError(f"no videos in '{cfg.archive}'" + (f" match '{cfg.videos}'" if cfg.videos else ""))
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    names = output_names(videos, cfg.extension)
    reports, work = [], []
    for vid, segs in videos.items():
        problem = incomplete(segs)
        if problem:
            report = {"video_id": vid, "status": "failed", "path": "", "error": problem}
            reports.append(report)
            if on_video:
                on_video(report)
        else:
            work.append((vid, segs))
    if work:
        init_ray(cfg.address)
        actors, route = decoder_actors(store, cfg.archive, cfg.storage_options, cfg.workers, len(work))
        refs = {}
        for i, (vid, segs) in enumerate(work):
            payloads = [store.read_bytes(r["object_key"]) for r in segs] if route else None
            out = str(cfg.out_dir / names[vid])
            refs[actors[i % len(actors)].restore_video.remote(segs, out, cfg.crf, payloads)] = vid

        def sink(report: dict[str, Any]) -> None:
            reports.append(report)
            if on_video:
                on_video(report)

        gather(refs, actors, sink)
    return sorted(reports, key=lambda r: r["video_id"])


def verify(archive: str, storage_options: dict[str, Any] | None = None, address: str | None = None,
           workers: int | None = None, on_segment: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Decode every ok segment and compare with its fingerprint: ok / drift / damaged / missing."""

    store, rows = open_archive(archive, storage_options or {})
    ok_rows = [r for r in rows if r["status"] == "ok"]
    results = []
    init_ray(address)
    actors, route = decoder_actors(store, archive, storage_options or {}, workers, len(ok_rows))

    def sink(result: dict[str, Any]) -> None:
        results.append(result)
        if on_segment:
            on_segment(result)

    refs = {}
    for i, r in enumerate(ok_rows):
        if not store.exists(r["object_key"]):
            sink({"segment_id": r["segment_id"], "status": "missing", "detail": f"{r['object_key']} is missing"})
            continue
        payload = store.read_bytes(r["object_key"]) if route else None
        refs[actors[i % len(actors)].verify.remote(r, payload)] = r
    gather(refs, actors, sink)
    return sorted(results, key=lambda r: r["segment_id"])
