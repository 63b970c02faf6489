"""The driver's submit: probe, plan, resume, dispatch, retry, record (and rate control's pass).

The driver is the only manifest writer. Work in flight is bounded with `ray.wait`; a failed
segment is retried up to `max_retries` times (a worker that dies is replaced); rows are appended
in batches, each only after its segment object is stored. Re-running the same submit skips every
segment that has an ok row and an object, so a killed job completes on the next run with every
segment exactly once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from evc_archive.core.errors import EVCError
from evc_archive.core.ratecontrol import Choice, RDPoint
from evc_archive.core.registry import DEFAULT_KEYFRAME_CODEC, DEFAULT_PREDICTOR
from evc_archive.core.settings import EncoderSettings
from evc_archive.distributed.plan import (DEFAULT_WORKER_MEMORY_GIB, SegmentPlan, SourceProbe, plan_segments,
                                          refuse_oversized)
from evc_archive.distributed.ray_pool import ActorPool, init_ray, probe_sources, worker_options
from evc_archive.distributed.worker import PAYLOAD_FIELD, RETRYABLE_FIELD, EncodeJob, failed_row
from evc_archive.io.archive import check_archive_settings, prepare_archive
from evc_archive.io.manifest import ManifestRow, append_rows, compact, now, read_manifest
from evc_archive.io.sources import list_sources
from evc_archive.io.store import Store

FLUSH_SECONDS = 2.0
FLUSH_ROWS = 64


@dataclass(frozen=True)
class SubmitConfig:
    source: str
    archive: str
    settings: EncoderSettings = field(default_factory=EncoderSettings.product)
    predictor: str = DEFAULT_PREDICTOR  # a registry.PREDICTORS name
    workers: int | None = None  # default: one per GPU, else one per CPU
    gpus_per_worker: float = 1.0  # used where the cluster has GPUs
    address: str | None = None  # Ray cluster address; None starts a local one
    storage_options: dict[str, Any] = field(default_factory=dict)
    source_options: dict[str, Any] = field(default_factory=dict)
    max_retries: int = 2
    in_flight_per_worker: int = 2
    target_bpp: float | None = None  # corpus-level target: rate control picks settings per segment
    cap_bpp: float | None = None  # optional hard cap per segment (with target_bpp)
    noop: bool = False  # benchmark: measure the driver, not the codec
    keyframe_codec: str = DEFAULT_KEYFRAME_CODEC  # a registry.KEYFRAME_CODECS name
    worker_memory_gib: float = DEFAULT_WORKER_MEMORY_GIB  # videos whose segments need more are refused (plan)


@dataclass
class SubmitSummary:
    videos: int = 0
    segments_planned: int = 0
    segments_skipped: int = 0  # already in the archive
    segments_ok: int = 0
    segments_failed: int = 0
    failed_sources: int = 0
    bytes: int = 0
    pixels: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (segment_id or uri, error)
    rate_note: str = ""  # rate control's message when the target cannot be met

    @property
    def bpp(self) -> float:
        return self.bytes * 8 / self.pixels if self.pixels else 0.0


class Events:
    """Progress hooks for the surface (the CLI draws them); every method is optional."""

    def planned(self, summary: SubmitSummary) -> None: ...
    def row(self, row: dict[str, Any]) -> None: ...
    def log(self, message: str) -> None: ...


# -- archive.json parameters ------------------------------------------------------------------------
def _archive_params(cfg: SubmitConfig) -> dict[str, Any]:
    s = cfg.settings
    return {"lpips_threshold": s.lpips_threshold, "quality": s.quality, "gop": s.gop, "sampling_steps": s.sampling_steps,
            "seed": s.seed, "predictor": cfg.predictor, "keyframe_codec": cfg.keyframe_codec,
            "residual_levels": s.residual_levels, "inter_fallback": s.inter_fallback, "search": s.search,
            "target_bpp": cfg.target_bpp, "cap_bpp": cfg.cap_bpp}


def _failed_probe_row(p: SourceProbe, cfg: SubmitConfig) -> dict[str, Any]:
    return ManifestRow(segment_id=f"{p.video_id}/probe", video_id=p.video_id, source_uri=p.uri, segment_index=-1,
                       start_frame=0, end_frame=0, status="failed", error=p.error or "no frames",
                       target_bpp=cfg.target_bpp, created_at=now(), attempts=1).as_dict()


# -- submit -----------------------------------------------------------------------------------------
def submit(cfg: SubmitConfig, events: Events | None = None, stop: threading.Event | None = None) -> SubmitSummary:
    """Archive every video of cfg.source into cfg.archive (resumable, idempotent)."""

    events = events or Events()
    started = time.perf_counter()
    # 1. the archive location first: one clear error before any work
    store = Store(cfg.archive, cfg.storage_options)
    store.check_writable()
    params = _archive_params(cfg)
    check_archive_settings(store, params)
    # 2. sources -> probes -> plan; minus what is already done (the archive is created only
    #    once the sources are known, so a mistyped source leaves nothing behind)
    uris = list_sources(cfg.source, cfg.source_options)
    if not uris:
        raise EVCError(f"no video files found in '{cfg.source}'")
    prepare_archive(store, params, cfg.keyframe_codec, cfg.predictor)
    init_ray(cfg.address)
    events.log(f"probing {len(uris)} sources")
    probes = [refuse_oversized(p, cfg.worker_memory_gib) for p in probe_sources(uris, cfg.source_options)]
    plans = plan_segments(probes, cfg.settings.gop)
    existing = {r["segment_id"]: r for r in read_manifest(store)}
    done = {sid for sid, r in existing.items() if r["status"] == "ok" and store.exists(r["object_key"])}
    todo = [p for p in plans if p.segment_id not in done]
    summary = SubmitSummary(videos=len(probes), segments_planned=len(plans), segments_skipped=len(plans) - len(todo))
    bad_probes = [p for p in probes if p.error or p.frame_count <= 0]
    summary.failed_sources = len(bad_probes)
    buffer: list[dict[str, Any]] = []
    for p in bad_probes:
        row = _failed_probe_row(p, cfg)
        summary.failures.append((p.uri, row["error"]))
        buffer.append(row)
        events.row(row)
    for sid in done:
        r = existing[sid]
        summary.bytes += r["bytes"] or 0
        summary.pixels += (r["end_frame"] - r["start_frame"]) * (r["width"] or 0) * (r["height"] or 0)
    events.planned(summary)
    # 3. dispatch
    route = not store.shared_across_processes
    if route:
        events.log("archive store lives in this process only: workers hand their segments to the driver to write")
    job = EncodeJob(cfg.archive, cfg.settings, cfg.predictor, cfg.storage_options, cfg.source_options,
                    cfg.target_bpp, route, cfg.noop, cfg.keyframe_codec)
    if todo:
        choices = None
        if cfg.target_bpp is not None:
            choices = _rate_control(todo, job, cfg, summary, events, stop)
        dispatch(todo, job, cfg, store, summary, events, buffer, stop, choices)
    append_rows(store, buffer)
    compact(store)
    summary.seconds = time.perf_counter() - started
    return summary


def _plan_failure(plan: SegmentPlan, error: str) -> dict[str, Any]:
    """The row of a segment whose worker failed (retryable)."""
    return failed_row(plan, error, retryable=True)


def _rate_control(todo: list[SegmentPlan], job: EncodeJob, cfg: SubmitConfig, summary: SubmitSummary,
                  events: Events, stop: threading.Event | None) -> dict[str, Choice]:
    """Pass 1: RD tables near the target on the workers; then the corpus allocation on the driver.
    Returns {segment_id: rate control's Choice (point and note)}; segments whose table failed are
    left out (their encode then fails the same way and is recorded)."""
    from evc_archive.core.ratecontrol import allocate

    n_workers, options = worker_options(cfg.workers, cfg.gpus_per_worker)
    pool = ActorPool(min(n_workers, len(todo)), options, job, cfg.in_flight_per_worker, events)
    tables: dict[str, list[RDPoint]] = {}

    def on_result(plan, result, attempts):
        if isinstance(result, list):
            tables[plan.segment_id] = result

    events.log(f"rate control: measuring {len(todo)} segments near {cfg.target_bpp} bpp")
    try:
        pool.run(todo, lambda a, p: a.rd_table.remote(p, cfg.target_bpp), _plan_failure, on_result,
                 cfg.max_retries, stop)
    finally:
        pool.close()
    ids = [p.segment_id for p in todo if p.segment_id in tables]
    if not ids:
        return {}
    alloc = allocate([tables[i] for i in ids], cfg.target_bpp, cfg.cap_bpp, summary.bytes, summary.pixels)
    summary.rate_note = alloc.note
    if alloc.note:
        events.log(f"rate control: {alloc.note}; using the closest settings")
    events.log(f"rate control: planned {alloc.bpp:.4f} bpp for target {cfg.target_bpp}")
    return {i: Choice(c.point, c.note or alloc.note) for i, c in zip(ids, alloc.choices)}


def dispatch(todo: list[SegmentPlan], job: EncodeJob, cfg: SubmitConfig, store: Store, summary: SubmitSummary,
              events: Events, buffer: list[dict[str, Any]], stop: threading.Event | None,
              choices: dict[str, Choice] | None = None) -> None:
    n_workers, options = worker_options(cfg.workers, cfg.gpus_per_worker)
    pool = ActorPool(min(n_workers, len(todo)), options, job, cfg.in_flight_per_worker, events)
    last_flush = time.monotonic()

    def flush(force: bool = False) -> None:
        nonlocal last_flush
        if buffer and (force or len(buffer) >= FLUSH_ROWS or time.monotonic() - last_flush > FLUSH_SECONDS):
            append_rows(store, buffer)
            buffer.clear()
            last_flush = time.monotonic()

    def record(plan: SegmentPlan, row: dict[str, Any], attempts: int) -> None:
        payload = row.pop(PAYLOAD_FIELD, None)
        row.pop(RETRYABLE_FIELD, None)
        row["attempts"] = attempts
        if row["status"] == "ok" and payload is not None:
            store.write_bytes(row["object_key"], payload)  # the object first, then its row
        if row["status"] == "ok":
            summary.segments_ok += 1
            summary.bytes += row.get("bytes") or 0
            summary.pixels += (row["end_frame"] - row["start_frame"]) * row["width"] * row["height"]
        else:
            summary.segments_failed += 1
            summary.failures.append((row["segment_id"], row.get("error") or "failed"))
        buffer.append(row)
        events.row(row)

    def call(actor, plan: SegmentPlan):
        chosen = (choices or {}).get(plan.segment_id)
        return actor.encode.remote(plan, chosen.point, chosen.note) if chosen else actor.encode.remote(plan)

    try:
        pool.run(todo, call, _plan_failure, record, cfg.max_retries, stop, tick=flush)
    finally:
        flush(force=True)
        pool.close()
