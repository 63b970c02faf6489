"""The archive as a whole (no Ray): archive.json and the models a job needs, opening an archive,
grouping its manifest rows into videos, and a per-video listing.

An archive is a store holding `archive.json` (format, the job's parameters, the sha256 of each
model), `models/<sha256>.pt` (with the model's card), `segments/` and `manifest/`.
"""

from __future__ import annotations

import fnmatch
import hashlib
from pathlib import PurePosixPath
from typing import Any

from evc_archive import __version__
from evc_archive.core.errors import EVCError
from evc_archive.core.runtime import one_line
from evc_archive.io.manifest import now, read_manifest
from evc_archive.io.store import Store

ARCHIVE_FORMAT = "evc-archive/1"


# -- archive.json and models ------------------------------------------------------------------------
def check_archive_settings(store: Store, params: dict[str, Any]) -> None:
    """An existing archive must have this build's format and these parameters (else one error)."""
    if not store.exists("archive.json"):
        return
    meta = store.read_json("archive.json")
    if meta.get("format") != ARCHIVE_FORMAT:
        raise EVCError(f"'{store.url}' holds archive format {meta.get('format')!r}; this build writes {ARCHIVE_FORMAT}")
    # archives from before an option was added have what it defaulted to then
    written = {"keyframe_codec": "hyperprior", "residual_levels": None, "inter_fallback": False, "search": "exhaustive",
               **(meta.get("parameters") or {})}
    if written != params:
        raise EVCError(f"archive '{store.url}' was written with other settings {meta.get('parameters')}; "
                       "re-run with the same options or choose a new archive")


def prepare_archive(store: Store, params: dict[str, Any], keyframe_codec: str, predictor: str) -> None:
    """Create archive.json and models/ for this keyframe codec and predictor (or check they match
    these parameters); one clear error otherwise."""
    from evc_archive.core.model_library import shipped_model_dir
    from evc_archive.core.registry import model_files_for

    models = {}
    for name in model_files_for(keyframe_codec, predictor):
        data = (shipped_model_dir() / name).read_bytes()
        models[name.split(".")[0]] = (hashlib.sha256(data).hexdigest(), data)
    if store.exists("archive.json"):
        check_archive_settings(store, params)
    else:
        store.write_json("archive.json", {
            "format": ARCHIVE_FORMAT, "created_by": f"evc-archive {__version__}", "created_at": now().isoformat(),
            "parameters": params, "models": {k: v[0] for k, v in models.items()}})
    for kind, (digest, data) in models.items():
        key = f"models/{digest}.pt"
        if store.size(key) != len(data):
            store.write_bytes(key, data)
        for suffix in (".md", ".loss.png"):  # the model card travels with the weights (reports show it)
            card = shipped_model_dir() / f"{kind}{suffix}"
            if card.is_file() and not store.exists(f"models/{digest}{suffix}"):
                store.write_bytes(f"models/{digest}{suffix}", card.read_bytes())


# -- reading ----------------------------------------------------------------------------------------
def open_archive(archive: str, storage_options: dict[str, Any]) -> tuple[Store, list[dict[str, Any]]]:
    """The archive's store and its manifest rows; one clear error for a missing or damaged archive."""
    store = Store(archive, storage_options)
    try:
        exists = store.exists("archive.json")
    except Exception as exc:  # noqa: BLE001 - missing bucket, credentials
        raise EVCError(f"cannot read archive '{archive}': {one_line(exc)}") from None
    if not exists:
        raise EVCError(f"'{archive}' is not an evc archive (no archive.json)")
    try:
        return store, read_manifest(store)
    except EVCError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign part file
        raise EVCError(f"the manifest of '{archive}' cannot be read ({one_line(exc)}); the archive is damaged") from None


def group_videos(rows: list[dict[str, Any]], pattern: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Manifest rows -> {video_id: segment rows in order}, probe rows dropped, filtered by pattern."""
    videos: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["segment_index"] < 0:
            continue
        name = PurePosixPath(r["source_uri"]).name
        if pattern and not (fnmatch.fnmatch(r["video_id"], pattern) or fnmatch.fnmatch(name, pattern)):
            continue
        videos.setdefault(r["video_id"], []).append(r)
    return {k: sorted(v, key=lambda r: r["segment_index"]) for k, v in sorted(videos.items())}


def output_names(videos: dict[str, list[dict[str, Any]]], extension: str) -> dict[str, str]:
    """video_id -> output file name: the source's name, made unique with the video id on collisions."""
    stems: dict[str, list[str]] = {}
    for vid, rows in videos.items():
        stems.setdefault(PurePosixPath(rows[0]["source_uri"]).stem, []).append(vid)
    names = {}
    for stem, vids in stems.items():
        for vid in vids:
            names[vid] = f"{stem}{extension}" if len(vids) == 1 else f"{stem}.{vid}{extension}"
    return names


def incomplete(segs: list[dict[str, Any]]) -> str:
    """Why a video cannot be restored whole ('' when it can): failed segments, gaps between
    segments, or fewer archived frames than the source has (an unfinished job)."""
    bad = [r for r in segs if r["status"] != "ok"]
    if bad:
        return f"{len(bad)} segment(s) failed ({bad[0]['segment_id']}: {bad[0].get('error')})"
    expected = max(r["segment_index"] for r in segs) + 1
    if len(segs) != expected:
        return f"{expected - len(segs)} segment(s) missing; re-run submit to finish the archive"
    archived = sum(r["end_frame"] - r["start_frame"] for r in segs)
    total = max((r.get("video_frames") or 0) for r in segs)
    if total and archived != total:
        return f"only {archived} of {total} frames are archived; re-run submit to finish the archive"
    return ""


REPORTED_MEANS = ("lpips_vgg_mean", "dists_mean")  # manifest columns of the metrics nothing optimises (v4)


def list_archive(archive: str, storage_options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One summary per video: segments ok/failed, frames, bytes, bpp, mean LPIPS, LPIPS-VGG and DISTS (no Ray).

    lpips_vgg_mean and dists_mean are None unless every ok segment has one (manifest v4 on)."""
    _, rows = open_archive(archive, storage_options or {})
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        v = out.setdefault(r["video_id"], {"video_id": r["video_id"], "source_uri": r["source_uri"], "segments_ok": 0,
                                           "segments_failed": 0, "frames": 0, "bytes": 0, "pixels": 0, "lpips": [],
                                           "lpips_vgg_mean": [], "dists_mean": [], "errors": []})
        if r["status"] == "ok":
            v["segments_ok"] += 1
            n = r["end_frame"] - r["start_frame"]
            v["frames"] += n
            v["bytes"] += r["bytes"]
            v["pixels"] += n * r["width"] * r["height"]
            v["lpips"].append(r["lpips_mean"])
            for key in REPORTED_MEANS:
                v[key].append(r.get(key))
        else:
            v["segments_failed"] += 1
            v["errors"].append(r["error"])
    for v in out.values():
        v["bpp"] = v["bytes"] * 8 / v["pixels"] if v["pixels"] else None
        v["lpips_mean"] = sum(v["lpips"]) / len(v["lpips"]) if v["lpips"] else None
        for key in REPORTED_MEANS:
            values = v[key]
            v[key] = sum(values) / len(values) if values and None not in values else None
        del v["lpips"]
    return sorted(out.values(), key=lambda v: v["video_id"])
