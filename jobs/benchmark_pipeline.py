"""Benchmark of the archival pipeline: real submit throughput, and the driver's own cost per segment.
Writes docs/benchmarks/pipeline.{md,json}.

    python -m jobs.benchmark_pipeline --out docs/benchmarks

Protocol (also written into the report):
- Real submit: generated corpora (evc_archive.io.sample.sample_frames, one seed per video, written
  as H.264 .mp4; 6 videos of 60 and of 300 frames at 128x128), submit's default settings on 2026-11-26 (copy-last predictor, quality 4, threshold 0.35) at --gop,
  a fresh local Ray cluster (2 CPUs) and a fresh local archive per run, with 1 and with 2 workers.
  "Dispatch" is from the moment the plan is ready (Events.planned) to the last manifest row
  (Events.row): it includes starting the actors and loading their models, not probing. "Total"
  adds probing, archive setup, the final manifest append and compaction (SubmitSummary.seconds);
  "wall" adds starting and stopping Ray. "Steady" is the rate from the first row to the last (the
  actors' start and model loading left out).
- Driver overhead: the driver's dispatch loop (`dispatch`: our `ActorPool`, `ray.wait`, retries,
  row bookkeeping, manifest appends every 64 rows / 2 s) over a large synthetic plan
  (`plan_segments` on made-up probes: nothing is read) with no-op workers (`EncodeJob(noop=True)`
  returns a row at once, writes nothing). Segments per second of the driver: whole (actor start
  included), steady (first row to last) and over the second half of the rows (every actor up);
  the driver process's CPU seconds per segment; then the final compaction and a resume's manifest
  read at that size. From the second-half rate: how many GPUs one driver keeps busy when a segment takes t seconds to encode (rate x t). All of
  this runs on the same 2 cores as the no-op actors, Ray's raylet and GCS, so it is a lower bound
  for a driver with a core of its own (the CPU-seconds figure gives that bound).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from fractions import Fraction
from pathlib import Path

QUIET_PATTERNS = ("benchmark_ratecontrol", "benchmark_codec", "benchmark_ablation")
# what every run codes: submit's default settings on 2026-11-26, kept so that runs stay comparable
# (the learned keyframe codec at quality 4, copy-last, threshold 0.35, every coded frame intra)
KEYFRAME_CODEC, PREDICTOR = "hyperprior", "copy-last"
GPU_ENCODE_SECONDS = (1.0, 5.0, 10.0)


def other_benchmarks(patterns=QUIET_PATTERNS) -> list[str]:
    """Other benchmark jobs running now (pgrep -f)."""
    return [p for p in patterns if subprocess.run(["pgrep", "-f", p], capture_output=True).returncode == 0]


def wait_until_quiet(poll: float = 30, max_wait: float = 900) -> float:
    """Wait while another benchmark runs, polling; returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < max_wait:
        busy = other_benchmarks()
        if not busy:
            return time.monotonic() - started
        print(f"waiting: {', '.join(busy)} running", flush=True)
        time.sleep(poll)
    print("still busy after the longest wait; measuring anyway (noted in the report)", flush=True)
    return time.monotonic() - started


def machine() -> dict:
    import ray
    import torch

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    mem = next((int(line.split()[1]) // 1024 ** 2 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), 0)
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": mem, "gpu": "none", "python": platform.python_version(),
            "ray": ray.__version__, "torch": torch.__version__, "os": platform.platform()}


def start_ray(num_cpus: int) -> float:
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    return time.perf_counter() - t0


def worker_threads() -> dict:
    """What a 1-CPU Ray worker sees (Ray sets OMP_NUM_THREADS to the worker's CPUs)."""
    import ray

    def probe():
        import torch

        return {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "torch_threads": torch.get_num_threads()}

    return ray.get(ray.remote(num_cpus=1)(probe).remote())


class Clock:
    """Events with timestamps: when the plan was ready and when each row arrived."""

    def __init__(self):
        self.planned_at: float | None = None
        self.row_times: list[float] = []
        self.rows: list[dict] = []

    def planned(self, summary) -> None:
        self.planned_at = time.perf_counter()

    def row(self, row) -> None:
        self.row_times.append(time.perf_counter())
        self.rows.append({k: row.get(k) for k in ("segment_id", "status", "encode_seconds", "bytes", "start_frame",
                                                   "end_frame")})

    def log(self, message) -> None:
        pass


# -- 1. real submit ---------------------------------------------------------------------------------
def make_corpus(root: Path, videos: int, frames: int, size: int) -> Path:
    from evc_archive.io.sample import sample_frames
    from evc_archive.io.video_write import write_video

    root.mkdir(parents=True, exist_ok=True)
    for seed in range(videos):
        write_video(root / f"sample{seed}.mp4", sample_frames(frames, size, size, seed=seed), Fraction(25))
    return root


def real_submit(corpus: Path, work: Path, workers: int, gop: int) -> dict:
    import ray

    from evc_archive.core.settings import EncoderSettings
    from evc_archive.distributed.submit import SubmitConfig, submit

    archive = work / f"archive-{workers}w"
    shutil.rmtree(archive, ignore_errors=True)
    wall0 = time.perf_counter()
    ray_start = start_ray(2)
    try:
        threads = worker_threads()
        clock = Clock()
        cfg = SubmitConfig(str(corpus), str(archive), EncoderSettings(gop=gop), PREDICTOR, workers=workers,
                           keyframe_codec=KEYFRAME_CODEC)
        summary = submit(cfg, clock)
    finally:
        ray.shutdown()
    wall = time.perf_counter() - wall0
    assert summary.segments_failed == 0 and summary.segments_ok == summary.segments_planned, summary
    n = summary.segments_ok
    frames = sum(r["end_frame"] - r["start_frame"] for r in clock.rows)
    dispatch = clock.row_times[-1] - clock.planned_at
    steady = clock.row_times[-1] - clock.row_times[0]
    encode = [r["encode_seconds"] for r in clock.rows]
    return {
        "corpus": corpus.name, "workers": workers, "segments": n, "frames": frames, "bpp": summary.bpp, "ray_start_seconds": ray_start,
        "worker_threads": threads, "dispatch_seconds": dispatch, "first_row_seconds": clock.row_times[0] - clock.planned_at,
        "total_seconds": summary.seconds, "wall_seconds": wall,
        "segments_per_second": n / dispatch, "frames_per_second": frames / dispatch,
        "steady_segments_per_second": (n - 1) / steady if n > 1 and steady > 0 else None,
        "wall_frames_per_second": frames / wall,
        "encode_seconds_mean": sum(encode) / len(encode), "encode_seconds_max": max(encode),
    }


# -- 2. driver overhead (no-op workers) -------------------------------------------------------------
def fake_plan(segments: int, gop: int, per_video: int = 100):
    from evc_archive.distributed.plan import SourceProbe, plan_segments

    videos = -(-segments // per_video)
    probes = [SourceProbe(f"/nonexistent/corpus/video{i:06d}.mp4", f"v{i:06d}-0000000000000000", gop * per_video, 128,
                          128, Fraction(25)) for i in range(videos)]
    t0 = time.perf_counter()
    plans = plan_segments(probes, gop)[:segments]
    return plans, time.perf_counter() - t0


def driver_overhead(work: Path, segments: int, workers: int, gop: int) -> dict:
    import psutil
    import ray

    from evc_archive.core.settings import EncoderSettings
    from evc_archive.distributed.submit import FLUSH_ROWS, FLUSH_SECONDS, SubmitConfig, SubmitSummary, dispatch
    from evc_archive.distributed.worker import EncodeJob
    from evc_archive.io.manifest import compact, part_keys, read_manifest
    from evc_archive.io.store import Store

    archive = work / f"noop-{segments}-{workers}w"
    shutil.rmtree(archive, ignore_errors=True)
    store = Store(str(archive))
    store.check_writable()
    plans, plan_seconds = fake_plan(segments, gop)
    cfg = SubmitConfig("unused", str(archive), EncoderSettings(gop=gop), PREDICTOR, workers=workers, noop=True,
                       keyframe_codec=KEYFRAME_CODEC)
    job = EncodeJob(str(archive), cfg.settings, cfg.predictor, noop=True, keyframe_codec=cfg.keyframe_codec)
    summary, buffer, clock = SubmitSummary(), [], Clock()
    me = psutil.Process()
    ray_start = start_ray(max(2, workers))  # logical CPUs: no-op actors need a slot each, not a core
    try:
        cpu0, t0 = sum(me.cpu_times()[:2]), time.perf_counter()
        clock.planned_at = t0
        dispatch(plans, job, cfg, store, summary, clock, buffer, None)
        t1, cpu1 = time.perf_counter(), sum(me.cpu_times()[:2])
    finally:
        ray.shutdown()
    assert summary.segments_ok == segments and summary.segments_failed == 0, summary
    parts = len(part_keys(store))
    t2 = time.perf_counter()
    compact(store)
    compact_seconds = time.perf_counter() - t2
    t3 = time.perf_counter()
    rows = read_manifest(store)
    read_seconds = time.perf_counter() - t3
    assert len(rows) == segments
    steady = clock.row_times[-1] - clock.row_times[0]
    steady_rate = (segments - 1) / steady
    half = clock.row_times[segments // 2:]  # the second half of the rows: every actor is up by then
    tail_rate = (len(half) - 1) / (half[-1] - half[0])
    cpu_per_segment = (cpu1 - cpu0) / segments
    return {
        "segments": segments, "workers": workers, "in_flight_per_worker": cfg.in_flight_per_worker,
        "flush_rows": FLUSH_ROWS, "flush_seconds": FLUSH_SECONDS, "ray_start_seconds": ray_start,
        "plan_seconds": plan_seconds, "dispatch_seconds": t1 - t0, "first_row_seconds": clock.row_times[0] - t0,
        "segments_per_second": segments / (t1 - t0), "steady_segments_per_second": steady_rate,
        "second_half_segments_per_second": tail_rate, "driver_cpu_seconds": cpu1 - cpu0, "driver_cpu_ms_per_segment": 1000 * cpu_per_segment,
        "manifest_parts": parts, "compact_seconds": compact_seconds, "read_manifest_seconds": read_seconds,
        "gpus_kept_busy": {f"{t:g}s": tail_rate * t for t in GPU_ENCODE_SECONDS},
        "gpus_kept_busy_own_core": {f"{t:g}s": t / cpu_per_segment for t in GPU_ENCODE_SECONDS},
    }


# -- report -----------------------------------------------------------------------------------------
def write_report(result: dict, out: Path) -> None:
    meta, real, noop = result["meta"], result["real"], result["noop"]
    m = meta["machine"]
    lines = [
        "# Pipeline benchmark", "",
        f"`jobs/benchmark_pipeline.py`, {meta['date']}. Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, "
        f"no GPU; Python {m['python']}, Ray {m['ray']}, torch {m['torch']}. Waited {meta['waited_seconds']:.0f} s for "
        f"other benchmarks to finish before measuring; 1-minute load average at the start: "
        f"{meta['load_average_1min_at_start']:.2f}.", "",
        __doc__.split("\n\n", 2)[2].strip(), "",
    ]
    for name, title in meta["corpora"].items():
        rows = [r for r in real if r["corpus"] == name]
        lines += [
            f"## Real submit: {title}", "",
            "| workers | Ray start | first row | dispatch | segments/s | frames/s | steady segments/s | steady frames/s | "
            "total (submit) | wall (with Ray) | frames/s on wall | encode s/segment (mean, max) | worker threads |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            steady = r["steady_segments_per_second"]
            per_seg = r["frames"] / r["segments"]
            lines.append(
                f"| {r['workers']} | {r['ray_start_seconds']:.1f} s | {r['first_row_seconds']:.1f} s | "
                f"{r['dispatch_seconds']:.1f} s | {r['segments_per_second']:.2f} | {r['frames_per_second']:.1f} | "
                f"{f'{steady:.2f}' if steady else '-'} | {f'{steady * per_seg:.1f}' if steady else '-'} | "
                f"{r['total_seconds']:.1f} s | {r['wall_seconds']:.1f} s | {r['wall_frames_per_second']:.1f} | "
                f"{r['encode_seconds_mean']:.2f}, {r['encode_seconds_max']:.2f} | "
                f"{r['worker_threads']['torch_threads']} (OMP_NUM_THREADS={r['worker_threads']['OMP_NUM_THREADS']}) |")
        if len(rows) >= 2:
            a, b = rows[0], rows[1]
            lines += ["", f"2 workers over 1: {b['segments_per_second'] / a['segments_per_second']:.2f}x on dispatch, "
                      f"{b['steady_segments_per_second'] / a['steady_segments_per_second']:.2f}x steady "
                      f"(each worker is one Ray CPU and one torch thread; {m['cores']} cores in all).", ""]
    lines += [
        "", "## Driver overhead (no-op workers)", "",
        "| segments | workers | in flight / worker | dispatch | first row | segments/s (whole) | segments/s (steady) | "
        "segments/s (second half) | driver CPU / segment | manifest parts | compact | read manifest (resume) | plan |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in noop:
        lines.append(
            f"| {r['segments']} | {r['workers']} | {r['in_flight_per_worker']} | {r['dispatch_seconds']:.1f} s | "
            f"{r['first_row_seconds']:.1f} s | {r['segments_per_second']:.0f} | {r['steady_segments_per_second']:.0f} | "
            f"{r['second_half_segments_per_second']:.0f} | "
            f"{r['driver_cpu_ms_per_segment']:.2f} ms | {r['manifest_parts']} | {r['compact_seconds']:.2f} s | "
            f"{r['read_manifest_seconds']:.2f} s | {r['plan_seconds']:.2f} s |")
    lines += ["", "GPUs one driver keeps busy (no-op rate over the second half of the rows x encode seconds per "
              "segment; in parentheses: with "
              "a core of its own, encode seconds / driver CPU seconds per segment):", "",
              "| segments | workers | " + " | ".join(f"{t:g} s / segment" for t in GPU_ENCODE_SECONDS) + " |",
              "|---|---|" + "---|" * len(GPU_ENCODE_SECONDS)]
    for r in noop:
        cells = [f"{r['gpus_kept_busy'][f'{t:g}s']:.0f} ({r['gpus_kept_busy_own_core'][f'{t:g}s']:.0f})"
                 for t in GPU_ENCODE_SECONDS]
        lines.append(f"| {r['segments']} | {r['workers']} | " + " | ".join(cells) + " |")
    for note in result.get("notes", []):
        lines += ["", note]
    lines.append("")
    (out / "pipeline.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    import datetime

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--frames", default="60,300", help="frames per video, one corpus per value, comma-separated")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--gop", type=int, default=30)
    parser.add_argument("--noop-runs", default="2000:2,2000:8,20000:2,20000:8,20000:16",
                        help="no-op runs as segments:workers, comma-separated")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for other benchmarks to finish")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    waited = 0.0 if args.no_wait else wait_until_quiet()
    busy_start, load_start = other_benchmarks(), os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="evc-bench-pipeline-"))
    try:
        real, corpora = [], {}
        for frames in map(int, args.frames.split(",")):
            name = f"{args.videos}x{frames}"
            corpus = make_corpus(work / name, args.videos, frames, args.size)
            corpora[name] = (f"{args.videos} videos x {frames} frames {args.size}x{args.size} (H.264 mp4), gop {args.gop} = "
                             f"{args.videos * -(-frames // args.gop)} segments")
            for workers in (1, 2):
                real.append(real_submit(corpus, work, workers, args.gop))
                print(json.dumps(real[-1]), flush=True)
        noop = []
        for run in args.noop_runs.split(","):
            n, w = map(int, run.split(":"))
            noop.append(driver_overhead(work, n, w, args.gop))
            print(json.dumps(noop[-1]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    busy = sorted(set(busy_start) | set(other_benchmarks()))
    meta = {"date": datetime.date.today().isoformat(), "machine": machine(), "waited_seconds": waited,
            "other_benchmarks_running": busy, "load_average_1min_at_start": load_start,
            "corpora": corpora}
    result_rows, result_secs = noop[0]["flush_rows"], noop[0]["flush_seconds"]
    notes = [
        "What the no-op rate leaves out: reading sources and writing segment objects (workers do both, in parallel, "
        "not the driver), and the CPU of Ray's raylet and GCS (not in the driver CPU figure). What it includes: "
        "every Ray call and result, the driver's bookkeeping and all manifest writes. The manifest grows by one part "
        f"per {result_rows} rows (or per {result_secs:g} s), so a resume's manifest read and the final compaction "
        "grow with the corpus: see the table (local disk; an object store adds a request per part).",
        "How far the GPU figures carry: they extrapolate a rate measured with at most "
        f"{max(r['workers'] for r in noop)} workers. Per result the driver calls `ray.wait` on every call in flight "
        "(2 per worker) and picks the least-loaded worker by a scan, both linear in the number of workers, so at "
        "hundreds of workers the driver's cost per segment grows and these figures are upper bounds; compare the "
        "rows with more workers.",
    ]
    if busy:
        notes.append(f"**Not a quiet machine:** {', '.join(busy)} ran during these measurements (1-minute load "
                     f"average {load_start:.1f} at the start on {os.cpu_count()} cores), so the numbers above are lower "
                     "than this machine gives alone.")
    result = {"meta": meta, "real": real, "noop": noop, "notes": notes}
    (args.out / "pipeline.json").write_text(json.dumps(result, indent=1))
    write_report(result, args.out)
    print(f"wrote {args.out / 'pipeline.md'}")


if __name__ == "__main__":
    main()
