"""The driver: submit (probe, plan, resume, dispatch, retry, record) and restore / verify.

The driver is the only manifest writer. Work in flight is bounded with `ray.wait`; a failed
segment is retried up to `max_retries` times (a worker that dies is replaced); rows are appended
in batches, each only after its segment object is stored. Re-running the same submit skips every
segment that has an ok row and an object, so a killed job completes on the next run with every
segment exactly once.
"""

from __future__ import annotations

import fnmatch
import hashlib
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from evc_archive import __version__
from evc_archive.core.encoder import EncoderSettings
from evc_archive.core.errors import EVCError
from evc_archive.core.registry import DEFAULT_PREDICTOR_NAME
from evc_archive.distributed.plan import SegmentPlan, SourceProbe, plan_segments
from evc_archive.distributed.worker import (PAYLOAD_FIELD, RETRYABLE_FIELD, EncodeJob, SegmentDecoder, SegmentEncoder,
                                            one_line)
from evc_archive.io.manifest import append_rows, compact, now, read_manifest
from evc_archive.io.sources import content_fingerprint, list_sources, video_id_for
from evc_archive.io.store import Store

ARCHIVE_FORMAT = "evc-archive/1"
FLUSH_SECONDS = 2.0
FLUSH_ROWS = 64


@dataclass(frozen=True)
class SubmitConfig:
    source: str
    archive: str
    settings: EncoderSettings = EncoderSettings()
    predictor: str = DEFAULT_PREDICTOR_NAME  # a registry.PREDICTOR_NAMES key
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
    keyframe_codec: str = "svtav1"  # "svtav1" (weightless AV1 intra; docs/benchmarks/ablation.md) | "hyperprior"


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


# -- Ray -------------------------------------------------------------------------------------------
def init_ray(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    kwargs = dict(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        ray.init(address=address, **kwargs) if address else ray.init(**kwargs)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise EVCError(f"cannot connect to the Ray cluster at '{address}': {one_line(exc)}") from None


def _worker_options(cfg_workers: int | None, gpus_per_worker: float) -> tuple[int, dict[str, Any]]:
    import ray

    resources = ray.cluster_resources()
    gpus = resources.get("GPU", 0)
    if gpus >= gpus_per_worker > 0:
        n = cfg_workers or int(gpus // gpus_per_worker)
        return max(1, n), {"num_gpus": gpus_per_worker, "num_cpus": 1}
    n = cfg_workers or int(resources.get("CPU", 1))
    return max(1, n), {"num_cpus": 1}


def _probe(uri: str, options: dict[str, Any]) -> SourceProbe:
    """Runs on the cluster: fingerprint and probe one source; errors become a probe with error."""
    from evc_archive.io.sources import open_source
    from evc_archive.io.video_probe import probe_video

    try:
        video_id = video_id_for(uri, content_fingerprint(uri, options))
    except Exception as exc:  # noqa: BLE001 - unreadable URL, missing bucket, credentials
        return SourceProbe(uri, video_id_for(uri, "u" + hashlib.sha256(uri.encode()).hexdigest()),
                           error=f"cannot read source: {one_line(exc)}")
    try:
        source = open_source(uri, options)
        try:
            info = probe_video(source)
        finally:
            if hasattr(source, "close"):
                source.close()
    except Exception as exc:  # noqa: BLE001
        return SourceProbe(uri, video_id, error=one_line(exc))
    return SourceProbe(uri, video_id, info.frame_count, info.width, info.height, info.fps)


def probe_sources(uris: list[str], options: dict[str, Any]) -> list[SourceProbe]:
    import ray

    task = ray.remote(num_cpus=1)(_probe)
    return ray.get([task.remote(u, options) for u in uris])


# -- archive.json and models ------------------------------------------------------------------------
def _archive_params(cfg: SubmitConfig) -> dict[str, Any]:
    s = cfg.settings
    return {"lpips_threshold": s.lpips_threshold, "quality": s.quality, "gop": s.gop, "sampling_steps": s.sampling_steps,
            "seed": s.seed, "predictor": cfg.predictor, "keyframe_codec": cfg.keyframe_codec,
            "residual_levels": s.residual_levels, "inter_fallback": s.inter_fallback,
            "target_bpp": cfg.target_bpp, "cap_bpp": cfg.cap_bpp}


def check_archive_settings(store: Store, cfg: SubmitConfig) -> None:
    """An existing archive must have this build's format and this job's settings (else one error)."""
    if not store.exists("archive.json"):
        return
    meta = store.read_json("archive.json")
    if meta.get("format") != ARCHIVE_FORMAT:
        raise EVCError(f"'{cfg.archive}' holds archive format {meta.get('format')!r}; this build writes {ARCHIVE_FORMAT}")
    # archives from before an option was added have what it defaulted to then
    written = {"keyframe_codec": "hyperprior", "residual_levels": None, "inter_fallback": False, **(meta.get("parameters") or {})}
    if written != _archive_params(cfg):
        raise EVCError(f"archive '{cfg.archive}' was written with other settings {meta.get('parameters')}; "
                       "re-run with the same options or choose a new archive")


def prepare_archive(store: Store, cfg: SubmitConfig) -> None:
    """Create archive.json and models/ (or check they match this job); one clear error otherwise."""
    from evc_archive.core.registry import model_files_for, shipped_model_dir

    models = {}
    for name in model_files_for(cfg.keyframe_codec, cfg.predictor):
        data = (shipped_model_dir() / name).read_bytes()
        models[name.split(".")[0]] = (hashlib.sha256(data).hexdigest(), data)
    params = _archive_params(cfg)
    if store.exists("archive.json"):
        check_archive_settings(store, cfg)
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


def _failed_probe_row(p: SourceProbe, cfg: SubmitConfig) -> dict[str, Any]:
    return {"segment_id": f"{p.video_id}/probe", "video_id": p.video_id, "source_uri": p.uri, "segment_index": -1,
            "start_frame": 0, "end_frame": 0, "status": "failed", "error": p.error or "no frames",
            "target_bpp": cfg.target_bpp, "created_at": now(), "attempts": 1}


# -- submit -----------------------------------------------------------------------------------------
def submit(cfg: SubmitConfig, events: Events | None = None, stop: threading.Event | None = None) -> SubmitSummary:
    """Archive every video of cfg.source into cfg.archive (resumable, idempotent)."""

    events = events or Events()
    started = time.perf_counter()
    # 1. the archive location first: one clear error before any work
    store = Store(cfg.archive, cfg.storage_options)
    store.check_writable()
    check_archive_settings(store, cfg)
    # 2. sources -> probes -> plan; minus what is already done (the archive is created only
    #    once the sources are known, so a mistyped source leaves nothing behind)
    uris = list_sources(cfg.source, cfg.source_options)
    if not uris:
        raise EVCError(f"no video files found in '{cfg.source}'")
    prepare_archive(store, cfg)
    init_ray(cfg.address)
    events.log(f"probing {len(uris)} sources")
    probes = probe_sources(uris, cfg.source_options)
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
        settings = None
        if cfg.target_bpp is not None:
            settings = _rate_control(todo, job, cfg, summary, events, stop)
        _dispatch(todo, job, cfg, store, summary, events, buffer, stop, settings)
    append_rows(store, buffer)
    compact(store)
    summary.seconds = time.perf_counter() - started
    return summary


class _ActorPool:
    """Our own bounded dispatch over Ray actors: `ray.wait`, retries, replacement of dead actors.
    (Retries and idempotence are ours: Ray's ActorPool does not give fault tolerance.)"""

    def __init__(self, n_workers: int, options: dict[str, Any], job: EncodeJob, capacity: int, events: Events):
        import ray

        self.cls = ray.remote(SegmentEncoder)
        self.options, self.job, self.capacity, self.events = options, job, capacity, events
        self.actors = [self._new() for _ in range(n_workers)]

    def _new(self):
        return self.cls.options(**self.options).remote(self.job)

    def run(self, items: list, call: Callable, failed_row: Callable, on_result: Callable, max_retries: int,
            stop: threading.Event | None, tick: Callable[[], None] = lambda: None) -> None:
        """call(actor, item) -> ref; on_result(item, result, attempts) for each final result."""
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        load = {i: 0 for i in range(len(self.actors))}
        queue: deque = deque((item, 1) for item in items)
        in_flight: dict[Any, tuple[Any, int, int, Any]] = {}  # ref -> (item, attempt, slot, actor)
        while queue or in_flight:
            while queue and not (stop is not None and stop.is_set()):
                i = min(load, key=load.get)
                if load[i] >= self.capacity:
                    break
                item, attempt = queue.popleft()
                in_flight[call(self.actors[i], item)] = (item, attempt, i, self.actors[i])
                load[i] += 1
            if not in_flight:
                break
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
            for ref in ready:
                item, attempt, i, actor = in_flight.pop(ref)
                load[i] -= 1
                try:
                    result = ray.get(ref)
                except (RayActorError, RayTaskError) as exc:
                    # a dead actor fails every call it had in flight: replace it on the first only (each
                    # later one would start yet another actor, dropping the replacement and its work)
                    if isinstance(exc, RayActorError) and self.actors[i] is actor:
                        self.events.log(f"worker {i} died ({one_line(exc)}); starting a new one")
                        self.actors[i] = self._new()
                    result = failed_row(item, f"worker failure: {one_line(exc)}")
                if isinstance(result, dict) and result.get("status") == "failed" and result.get(RETRYABLE_FIELD) \
                        and attempt <= max_retries:
                    self.events.log(f"{getattr(item, 'segment_id', item)}: attempt {attempt} failed ({result.get('error')}); retrying")
                    queue.appendleft((item, attempt + 1))
                    continue
                on_result(item, result, attempt)
            tick()

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)


def _plan_failure(plan: SegmentPlan, error: str) -> dict[str, Any]:
    return {"segment_id": plan.segment_id, "video_id": plan.video_id, "source_uri": plan.source_uri,
            "segment_index": plan.index, "start_frame": plan.start, "end_frame": plan.end,
            "video_frames": plan.video_frames or None, "width": plan.width,
            "height": plan.height, "fps_num": plan.fps.numerator, "fps_den": plan.fps.denominator,
            "object_key": plan.object_key, "status": "failed", "error": error, RETRYABLE_FIELD: True, "created_at": now()}


def _rate_control(todo: list[SegmentPlan], job: EncodeJob, cfg: SubmitConfig, summary: SubmitSummary,
                  events: Events, stop: threading.Event | None) -> dict[str, tuple[int, float, str, int | None, bool]]:
    """Pass 1: RD tables near the target on the workers; then the corpus allocation on the driver.
    Returns {segment_id: (quality, threshold, note, residual levels, inter)}; segments whose table failed are left out
    (their encode then fails the same way and is recorded)."""
    from evc_archive.core.ratecontrol import RDPoint, allocate

    n_workers, options = _worker_options(cfg.workers, cfg.gpus_per_worker)
    pool = _ActorPool(min(n_workers, len(todo)), options, job, cfg.in_flight_per_worker, events)
    tables: dict[str, list[RDPoint]] = {}

    def on_result(plan, result, attempts):
        if isinstance(result, list):
            tables[plan.segment_id] = [RDPoint(**p) for p in result]

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
    return {i: (c.point.quality, c.point.threshold, c.note or alloc.note, c.point.residual_levels, c.point.inter)
            for i, c in zip(ids, alloc.choices)}


def _dispatch(todo: list[SegmentPlan], job: EncodeJob, cfg: SubmitConfig, store: Store, summary: SubmitSummary,
              events: Events, buffer: list[dict[str, Any]], stop: threading.Event | None,
              settings: dict[str, tuple[int, float, str, int | None, bool]] | None = None) -> None:
    n_workers, options = _worker_options(cfg.workers, cfg.gpus_per_worker)
    pool = _ActorPool(min(n_workers, len(todo)), options, job, cfg.in_flight_per_worker, events)
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
        chosen = (settings or {}).get(plan.segment_id)
        return actor.encode.remote(plan, *chosen) if chosen else actor.encode.remote(plan)

    try:
        pool.run(todo, call, _plan_failure, record, cfg.max_retries, stop, tick=flush)
    finally:
        flush(force=True)
        pool.close()


# -- restore, verify, ls ----------------------------------------------------------------------------
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


def open_archive(archive: str, storage_options: dict[str, Any]) -> tuple[Store, list[dict[str, Any]]]:
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
        problem = _incomplete(segs)
        if problem:
            report = {"video_id": vid, "status": "failed", "path": "", "error": problem}
            reports.append(report)
            if on_video:
                on_video(report)
        else:
            work.append((vid, segs))
    if work:
        init_ray(cfg.address)
        actors, route = _decoder_actors(store, cfg.archive, cfg.storage_options, cfg.workers, len(work))
        refs = {}
        for i, (vid, segs) in enumerate(work):
            payloads = [store.read_bytes(r["object_key"]) for r in segs] if route else None
            out = str(cfg.out_dir / names[vid])
            refs[actors[i % len(actors)].restore_video.remote(segs, out, cfg.crf, payloads)] = vid

        def sink(report: dict[str, Any]) -> None:
            reports.append(report)
            if on_video:
                on_video(report)

        _gather(refs, actors, sink)
    return sorted(reports, key=lambda r: r["video_id"])


def _decoder_actors(store: Store, archive: str, storage_options: dict[str, Any], workers: int | None,
                    n_items: int) -> tuple[list, bool]:
    """Decoder actors for restore/verify, and whether object bytes must ride with each call
    (a store that lives in the driver's process only)."""
    import ray

    n_workers, options = _worker_options(workers, 1.0)
    route = not store.shared_across_processes
    models = {k.split("/")[-1]: store.read_bytes(k) for k in store.list("models") if k.endswith(".pt")} if route else None
    actor_cls = ray.remote(SegmentDecoder)
    actors = [actor_cls.options(**options).remote(archive, storage_options, models)
              for _ in range(max(1, min(n_workers, n_items)))]
    return actors, route


def _gather(refs: dict, actors: list, sink: Callable[[dict[str, Any]], Any]) -> None:
    """Hand each result to sink as it completes, then stop the actors."""
    import ray

    while refs:
        ready, _ = ray.wait(list(refs), num_returns=1)
        for ref in ready:
            refs.pop(ref)
            sink(ray.get(ref))
    for a in actors:
        ray.kill(a)


def _incomplete(segs: list[dict[str, Any]]) -> str:
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


def verify(archive: str, storage_options: dict[str, Any] | None = None, address: str | None = None,
           workers: int | None = None, on_segment: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Decode every ok segment and compare with its fingerprint: ok / drift / damaged / missing."""

    store, rows = open_archive(archive, storage_options or {})
    ok_rows = [r for r in rows if r["status"] == "ok"]
    results = []
    init_ray(address)
    actors, route = _decoder_actors(store, archive, storage_options or {}, workers, len(ok_rows))

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
    _gather(refs, actors, sink)
    return sorted(results, key=lambda r: r["segment_id"])


def list_archive(archive: str, storage_options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One summary per video: segments ok/failed, frames, bytes, bpp, mean LPIPS (no Ray)."""
    _, rows = open_archive(archive, storage_options or {})
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        v = out.setdefault(r["video_id"], {"video_id": r["video_id"], "source_uri": r["source_uri"], "segments_ok": 0,
                                           "segments_failed": 0, "frames": 0, "bytes": 0, "pixels": 0, "lpips": [],
                                           "errors": []})
        if r["status"] == "ok":
            v["segments_ok"] += 1
            n = r["end_frame"] - r["start_frame"]
            v["frames"] += n
            v["bytes"] += r["bytes"]
            v["pixels"] += n * r["width"] * r["height"]
            v["lpips"].append(r["lpips_mean"])
        else:
            v["segments_failed"] += 1
            v["errors"].append(r["error"])
    for v in out.values():
        v["bpp"] = v["bytes"] * 8 / v["pixels"] if v["pixels"] else None
        v["lpips_mean"] = sum(v["lpips"]) / len(v["lpips"]) if v["lpips"] else None
        del v["lpips"]
    return sorted(out.values(), key=lambda v: v["video_id"])
