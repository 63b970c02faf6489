"""`evc-archive report`: what an archive holds and what was lost, as one self-contained HTML page.

Reads the manifest (no Ray, no re-encoding). For each shown video it decodes the worst segment
(highest mean LPIPS) with the archive's own models and, when the source is still reachable, reads
the same frames from it for a source | restored strip. When a source is gone the page says so and
shows what the manifest and the archive hold.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable

import numpy as np

from evc_archive.core.errors import EVCError
from evc_archive.core.runtime import one_line
from evc_archive.io.archive import group_videos, open_archive
from evc_archive.io.segment_decoder import SegmentDecoder
from evc_archive.reports import figures
from evc_archive.reports.html import data_uri, render

Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclass(frozen=True)
class ReportOptions:
    archive: str
    storage_options: dict[str, Any] = field(default_factory=dict)
    source_options: dict[str, Any] | None = None  # default: the archive's options
    max_videos: int = 50  # videos with a detailed section (the worst first); all are in the table
    strip_frames: int = 8


@dataclass(frozen=True)
class Totals:
    videos: int
    segments_ok: int
    segments_failed: int
    frames: int
    bytes: int
    pixels: int
    lpips_mean: float | None
    psnr_mean: float | None
    lpips_vgg_mean: float | None = None  # None unless every ok segment has it (manifest v4 on)
    dists_mean: float | None = None  # the same

    @property
    def bpp(self) -> float | None:
        return self.bytes * 8 / self.pixels if self.pixels else None


def _weighted_mean(values: list[float | None], weights: list[int]) -> float | None:
    pairs = [(v, w) for v, w in zip(values, weights) if v is not None]
    return float(np.average([v for v, _ in pairs], weights=[w for _, w in pairs])) if pairs else None


def _weighted_mean_of_all(values: list[float | None], weights: list[int]) -> float | None:
    """The weighted mean, or None where any value is missing (no mean of a subset)."""
    return None if None in values else _weighted_mean(values, weights)


def segment_frames(row: dict[str, Any]) -> int:
    return row["end_frame"] - row["start_frame"]


def totals(rows: list[dict[str, Any]]) -> Totals:
    """Corpus numbers from manifest rows (probe-failure rows count as failures, not segments)."""
    ok = [r for r in rows if r["status"] == "ok"]
    sizes = [segment_frames(r) for r in ok]
    frames = sum(sizes)
    return Totals(
        videos=len({r["video_id"] for r in rows}), segments_ok=len(ok),
        segments_failed=sum(1 for r in rows if r["status"] != "ok"), frames=frames,
        bytes=sum(r["bytes"] or 0 for r in ok), pixels=sum(segment_frames(r) * r["width"] * r["height"] for r in ok),
        lpips_mean=_weighted_mean([r["lpips_mean"] for r in ok], sizes),  # per frame
        psnr_mean=_weighted_mean([r["psnr_mean"] for r in ok], sizes),
        lpips_vgg_mean=_weighted_mean_of_all([r.get("lpips_vgg_mean") for r in ok], sizes),
        dists_mean=_weighted_mean_of_all([r.get("dists_mean") for r in ok], sizes))


def _read_json(store, key: str) -> dict[str, Any]:
    try:
        return store.read_json(key)
    except Exception as exc:  # noqa: BLE001
        raise EVCError(f"'{key}' of the archive cannot be read ({one_line(exc)}); the archive is damaged") from None


# weightless codecs and predictors have no file in the archive: their cards ship with the package
WEIGHTLESS_CARDS = {("keyframe_codec", "svtav1"): ("keyframe: AV1 intra (SVT-AV1 / dav1d)", "svtav1-intra.md"),
                    ("predictor", "motion-hint"): ("predictor: global-motion-hint", "motion-hint.md"),
                    ("predictor", "block-hint"): ("predictor: block-motion-hint", "block-hint.md"),
                    ("inter_fallback", True): ("segments: AV1 inter GOP fallback", "av1-inter-gop.md")}


def _model_cards(store, digests: dict[str, str], params: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per model the archive names: sha256, size, its card (from the archive, else the
    shipped card of the same file), loss curve; then the weightless ones its settings use."""
    from evc_archive.core.model_library import file_sha256, shipped_model_dir

    @functools.cache
    def shipped() -> dict[str, Path]:  # hashed only when an archive lacks a card (archives before cards)
        return {file_sha256(p).hex(): p for p in sorted(shipped_model_dir().glob("*.pt"))}

    out = []
    for kind, digest in sorted(digests.items()):
        key = f"models/{digest}"
        card = loss = None
        if store.exists(f"{key}.md"):
            card = store.read_bytes(f"{key}.md").decode("utf-8", "replace")
            loss = store.read_bytes(f"{key}.loss.png") if store.exists(f"{key}.loss.png") else None
        elif digest in shipped():
            path = shipped()[digest]
            md, png = path.with_suffix(".md"), path.with_suffix(".loss.png")
            card = md.read_text() if md.is_file() else None
            loss = png.read_bytes() if png.is_file() else None
        out.append({"kind": kind, "sha256": digest, "bytes": store.size(f"{key}.pt"), "card": card,
                    "loss_png": data_uri(loss) if loss else None})
    for (setting, value), (kind, name) in WEIGHTLESS_CARDS.items():
        card = shipped_model_dir() / name
        if params.get(setting) == value and card.is_file():
            out.append({"kind": kind, "sha256": "(weightless: no file)", "bytes": 0, "card": card.read_text(),
                        "loss_png": None})
    return out


def _source_frames(row: dict[str, Any], options: dict[str, Any]) -> tuple[np.ndarray | None, str]:
    """The segment's source frames, or (None, why not)."""
    from evc_archive.io.sources import open_source
    from evc_archive.io.video_read import read_frames

    try:
        source = open_source(row["source_uri"], options)
        try:
            frames = read_frames(source, row["start_frame"], row["end_frame"])
        finally:
            if hasattr(source, "close"):
                source.close()
    except Exception as exc:  # noqa: BLE001
        return None, f"source not reachable ({one_line(exc)})"
    if frames.shape[0] != segment_frames(row) or frames.shape[1:3] != (row["height"], row["width"]):
        return None, "source has changed since it was archived (other frame count or size)"
    return frames, ""


def _worst_strip(row: dict[str, Any], decoder: SegmentDecoder, store, source_options: dict[str, Any],
                 count: int) -> dict[str, Any]:
    """Source | restored strip of one segment, the worst frame and coded frames included."""
    try:
        restored = decoder.decode_bytes(store.read_bytes(row["object_key"])).numpy()
    except Exception as exc:  # noqa: BLE001
        return {"png": None, "note": f"segment {row['segment_id']} could not be decoded: {one_line(exc)}"}
    source, note = _source_frames(row, source_options)
    coded = list(row.get("frame_coded") or [])
    per_frame = list(row.get("frame_lpips") or [])
    worst = int(np.argmax(per_frame)) if per_frame else None
    must = ([worst] if worst is not None else []) + [i for i, c in enumerate(coded) if c][:2]
    picks = figures.pick_frames(len(restored), count, must)
    captions, borders = [], []
    for i in picks:
        kind = ("C" if coded[i] else "G") if coded else ""
        lp = f" {per_frame[i]:.2f}" if per_frame else ""
        captions.append(f"#{row['start_frame'] + i} {kind}{lp}")
        borders.append((figures.CODED_COLOUR if coded[i] else figures.GENERATED_COLOUR) if coded else None)
    scale = figures.tile_scale(row["height"], row["width"])
    png = figures.strip_png([("source", source[picks] if source is not None else None), ("restored", restored[picks])],
                            captions, borders if coded else None, scale)
    return {"png": data_uri(png), "note": note}


def _video_section(vid: str, segs: list[dict[str, Any]], decoder: SegmentDecoder | None, store,
                   opts: ReportOptions, source_options: dict[str, Any]) -> dict[str, Any]:
    ok = [r for r in segs if r["status"] == "ok"]
    t = totals(segs)
    traces = [figures.SegmentTrace(r["start_frame"], r["end_frame"], r["bpp"], r["lpips_mean"], r.get("frame_lpips"),
                                   r.get("frame_coded"), r["lpips_threshold"], r["status"] != "ok") for r in segs]
    name = PurePosixPath(segs[0]["source_uri"]).name
    section = {
        "video_id": vid, "name": name, "source_uri": segs[0]["source_uri"], "totals": t, "segments": segs,
        "size": f"{segs[0]['width']}x{segs[0]['height']}" if segs[0]["width"] else "?",
        "per_frame_recorded": all(r.get("frame_lpips") is not None for r in ok),
        "quality_png": data_uri(figures.frame_quality_png(traces, f"{name}: LPIPS per frame and bpp per segment")),
        "worst": None, "strip": None,
    }
    if ok and decoder is not None:
        worst = max(ok, key=lambda r: r["lpips_mean"])
        section["worst"] = worst
        section["strip"] = _worst_strip(worst, decoder, store, source_options, opts.strip_frames)
    return section


def build_report(opts: ReportOptions, on_progress: Progress | None = None) -> str:
    """The report of one archive as an HTML string (images embedded)."""
    store, rows = open_archive(opts.archive, opts.storage_options)
    meta = _read_json(store, "archive.json")
    params = meta.get("parameters", {})
    source_options = opts.source_options if opts.source_options is not None else opts.storage_options
    videos = group_videos(rows)
    probe_failures = [r for r in rows if r["segment_index"] < 0]
    failures = probe_failures + [r for segs in videos.values() for r in segs if r["status"] != "ok"]
    seg_rows = [r for segs in videos.values() for r in segs]
    ok = [r for r in seg_rows if r["status"] == "ok"]
    corpus = totals(seg_rows + probe_failures)
    ranked = sorted(videos, key=lambda v: -max((r["lpips_mean"] or 0) for r in videos[v]))
    shown = ranked[:max(0, opts.max_videos)]
    decoder = None
    if ok and shown:
        try:
            decoder = SegmentDecoder(opts.archive, opts.storage_options)
        except Exception as exc:  # noqa: BLE001 - the models folder is unreadable: report without strips
            meta.setdefault("_notes", []).append(f"the archive's models cannot be loaded ({one_line(exc)})")
    sections = []
    for i, vid in enumerate(shown):
        if on_progress:
            on_progress(f"video {vid}", i, len(shown))
        sections.append(_video_section(vid, videos[vid], decoder, store, opts, source_options))
    if on_progress:
        on_progress("writing", len(shown), len(shown))
    unreachable = [s for s in sections if s["strip"] and s["strip"]["note"].startswith("source not reachable")]
    video_rows = []
    for vid, segs in videos.items():
        t = totals(segs)
        video_rows.append({"video_id": vid, "name": PurePosixPath(segs[0]["source_uri"]).name, "totals": t,
                           "shown": vid in shown})
    context = {
        "archive": opts.archive, "meta": meta, "params": params,
        "corpus": corpus, "target_bpp": params.get("target_bpp"), "failures": failures,
        "videos": video_rows, "sections": sections, "shown": len(shown),
        "unreachable": len(unreachable), "notes": meta.get("_notes", []),
        "lpips_hist": data_uri(figures.histogram_png([r["lpips_mean"] for r in ok], "LPIPS (segment mean)",
                                                     "LPIPS per segment")) if ok else None,
        "psnr_hist": data_uri(figures.histogram_png([r["psnr_mean"] for r in ok], "PSNR dB (segment mean)",
                                                    "PSNR per segment")) if ok else None,
        "bpp_hist": data_uri(figures.histogram_png([r["bpp"] for r in ok], "bpp", "bpp per segment")) if ok else None,
        "models": _model_cards(store, meta.get("models", {}), params),
        "rate_notes": sorted({r["rate_note"] for r in ok if r.get("rate_note")}),
    }
    return render("report.html.j2", context)
