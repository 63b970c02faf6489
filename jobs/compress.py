"""Archive a video corpus on Ray: the entry point for `ray job submit` (same job as `evc-archive submit`).

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/compress.py s3://bucket/videos/ --out s3://bucket/archive --gpus-per-worker 1 \
        --wait-for-gpus 16     # GPU nodes that autoscale from zero: bring them up before dispatch

    python jobs/compress.py videos/ --out archive/            # local: starts a Ray cluster in-process
    python jobs/compress.py videos/ --out archive/ --address auto   # attach to `ray start --head`

Inside `ray job submit` the driver runs on the cluster with RAY_ADDRESS set, so it attaches with
`address="auto"`; without RAY_ADDRESS and without --address it starts a local Ray cluster.
Job logs are files, so progress is plain lines on stderr (one every --progress-seconds, plus one per
failed segment); the last line on stdout is a JSON summary. Re-running the same command resumes:
finished segments are skipped, never duplicated. SIGINT/SIGTERM stops dispatching and lets
segments in flight finish; a second signal aborts (`ray job stop` sends SIGTERM and kills the driver
a few seconds later: rows already written stay, the rest is redone on resume). Exit codes: 0 done (failed segments are
listed in the summary and the manifest), 1 with one line on stderr for a user error (bad archive
location, no videos, settings that differ from the archive's), 2 for bad options, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# One set of defaults and choices for both entry points (evc-archive submit and this job): the
# CLI module imports only typer and rich at module level, so --help stays fast.
from evc_archive.cli import (DEFAULTS, INTER_HELP, INTRA_ONLY_HELP, KEYFRAME_CHOICES, PREDICTOR_CHOICES,  # noqa: E402
                             QUALITY_HELP, RESIDUAL_HELP, loop_settings)

MAX_FAILURES_IN_SUMMARY = 50


def log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}", file=sys.stderr, flush=True)


def json_object(parser: argparse.ArgumentParser, name: str, text: str | None) -> dict:
    """A JSON-object option (fsspec storage options) -> dict; a usage error otherwise."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        parser.error(f"{name} is not valid JSON ({exc.msg})")
    if not isinstance(value, dict):
        parser.error(f"{name} must be a JSON object, e.g. '{{\"anon\": true}}'")
    return value


def ray_address(given: str | None) -> str | None:
    """--address if given; 'auto' inside `ray job submit` (RAY_ADDRESS is set); else None (local)."""
    if given:
        return given
    return "auto" if os.environ.get("RAY_ADDRESS") else None


def wait_for_gpus(address: str | None, gpus: int, timeout: float) -> None:
    """Ask the autoscaler for `gpus` GPUs and wait until the cluster has them (or `timeout` passes).

    The pipeline sizes its worker pool from the GPUs present when dispatch starts; with a GPU node
    group that autoscales from zero there are none yet, and the job would run on the head's CPUs.
    The request is withdrawn by `release_gpus` when the job ends, so idle nodes scale down again."""
    import ray
    from ray.autoscaler.sdk import request_resources

    from evc_archive.core.errors import EVCError
    from evc_archive.distributed.ray_pool import init_ray

    init_ray(address)
    have = ray.cluster_resources().get("GPU", 0)
    if have >= gpus:
        log(f"cluster has {have:g} GPUs")
        return
    log(f"asking the autoscaler for {gpus} GPUs (the cluster has {have:g}); waiting up to {timeout:.0f} s")
    request_resources(bundles=[{"GPU": 1}] * gpus)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(10)
        now_have = ray.cluster_resources().get("GPU", 0)
        if now_have != have:
            have = now_have
            log(f"cluster has {have:g} of {gpus} GPUs")
        if have >= gpus:
            return
    if have <= 0:
        raise EVCError(f"no GPU came up in {timeout:.0f} s: check the cluster's GPU node group (quotas, "
                       "instance availability, max workers) or run without --wait-for-gpus to use CPUs")
    log(f"only {have:g} of {gpus} GPUs after {timeout:.0f} s; going on with those")


def release_gpus() -> None:
    """Withdraw the autoscaler request made by `wait_for_gpus` (no-op without Ray)."""
    import ray

    if ray.is_initialized():
        from ray.autoscaler.sdk import request_resources

        try:
            request_resources(bundles=[])
        except Exception as exc:  # noqa: BLE001 - best effort: the cluster scales down on its idle timeout
            log(f"could not withdraw the GPU request: {exc}")


def install_drain(stop) -> None:
    """First SIGINT/SIGTERM: stop dispatching, finish segments in flight; second: abort."""
    import signal

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        log("draining: finishing segments in flight (signal again to abort; re-run to resume)")

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Archive a corpus: split every video into GOP segments and encode them on Ray workers. "
                    "Re-running the same command resumes.")
    p.add_argument("source", help="Corpus: a folder, a glob ('videos/*.mp4'), an fsspec URL prefix "
                                  "(s3://bucket/videos/) or an input manifest (.parquet/.csv with a 'uri' column).")
    p.add_argument("--out", required=True, help="Archive location: any fsspec URL or folder.")
    p.add_argument("--lpips-threshold", type=float, default=DEFAULTS["lpips_threshold"],
                   help="Accept a generated frame while its LPIPS to the source is at most this (default %(default)s).")
    p.add_argument("--quality", type=int, default=None, help=QUALITY_HELP)
    p.add_argument("--gop", type=int, default=DEFAULTS["gop"], help="Frames per segment (default %(default)s).")
    p.add_argument("--target-bpp", type=float, default=None,
                   help="Corpus-level target bpp: rate control chooses quality and threshold per segment "
                        "(overrides --quality/--lpips-threshold).")
    p.add_argument("--cap-bpp", type=float, default=None, help="Hard per-segment bpp cap (with --target-bpp).")
    p.add_argument("--steps", type=int, default=DEFAULTS["steps"],
                   help="DDIM sampling steps of the diffusion predictor (default %(default)s).")
    p.add_argument("--seed", type=int, default=0, help="Job seed; each segment's seed derives from it (default 0).")
    p.add_argument("--predictor", choices=PREDICTOR_CHOICES, default=DEFAULTS["predictor"],
                   help="Frame predictor (default %(default)s).")
    p.add_argument("--keyframe-codec", choices=KEYFRAME_CHOICES, default=DEFAULTS["keyframe_codec"],
                   help="Codec of the coded frames (default %(default)s).")
    p.add_argument("--residual-levels", type=int, default=DEFAULTS["residual_levels"],
                   help=RESIDUAL_HELP + " (default %(default)s)")
    p.add_argument("--intra-only", action="store_true", help=INTRA_ONLY_HELP)
    p.add_argument("--no-inter", action="store_true", help=INTER_HELP)
    p.add_argument("--workers", type=int, default=None, help="Ray workers (default: one per GPU, else one per CPU).")
    p.add_argument("--gpus-per-worker", type=float, default=1.0,
                   help="GPUs per worker where the cluster has GPUs (default %(default)s).")
    p.add_argument("--address", default=None,
                   help="Ray cluster address (e.g. 'auto', 'ray://head:10001'); default: 'auto' when RAY_ADDRESS "
                        "is set (inside `ray job submit`), else a local cluster.")
    p.add_argument("--storage-options", default=None,
                   help="JSON of fsspec options for the archive (credentials, endpoint_url, ...).")
    p.add_argument("--source-options", default=None,
                   help="JSON of fsspec options for the sources (default: the same as --storage-options).")
    p.add_argument("--retries", type=int, default=2,
                   help="Retries of a segment that failed for a reason other than its input (default %(default)s).")
    p.add_argument("--wait-for-gpus", type=int, default=0, metavar="N",
                   help="Before starting, ask the Ray autoscaler for N GPUs and wait until they are up (use it "
                        "when GPU workers autoscale from zero: the worker pool is sized from the GPUs present "
                        "at dispatch). Default 0: use what the cluster has.")
    p.add_argument("--wait-timeout", type=float, default=900.0,
                   help="Seconds to wait for --wait-for-gpus (default %(default)s).")
    p.add_argument("--progress-seconds", type=float, default=30.0,
                   help="Seconds between progress lines (default %(default)s).")
    args = p.parse_args(argv)
    if args.gop < 1 or args.steps < 1 or args.lpips_threshold < 0 or args.seed < 0 or args.retries < 0 \
            or args.residual_levels < 0:
        p.error("--gop and --steps must be >= 1; --lpips-threshold, --seed, --retries and --residual-levels >= 0")
    if args.workers is not None and args.workers < 1:
        p.error("--workers must be >= 1")
    if args.gpus_per_worker < 0 or args.wait_for_gpus < 0:
        p.error("--gpus-per-worker and --wait-for-gpus must be >= 0")
    args.storage_options = json_object(p, "--storage-options", args.storage_options)
    args.source_options = (json_object(p, "--source-options", args.source_options) if args.source_options
                           else args.storage_options)
    return args


def make_events(every: float):
    """An Events subclass that prints plain lines: the plan, failures, and progress every `every` s."""
    from evc_archive.distributed.submit import Events

    class LineEvents(Events):
        def __init__(self) -> None:
            self.total = self.done = self.failed = self.bytes = self.pixels = 0
            self.started = self.last = time.monotonic()

        def planned(self, summary) -> None:
            self.total = summary.segments_planned - summary.segments_skipped
            self.bytes, self.pixels = summary.bytes, summary.pixels
            self.started = self.last = time.monotonic()
            log(f"{summary.videos} videos, {summary.segments_planned} segments planned, "
                f"{summary.segments_skipped} already archived, {self.total} to encode, "
                f"{summary.failed_sources} unusable sources")

        def row(self, row) -> None:
            if row["segment_index"] >= 0:
                self.done += 1
            if row["status"] == "ok":
                self.bytes += row.get("bytes") or 0
                self.pixels += (row["end_frame"] - row["start_frame"]) * (row["width"] or 0) * (row["height"] or 0)
            else:
                self.failed += row["segment_index"] >= 0  # unusable sources are counted in `planned`
                log(f"failed {row['segment_id']}: {row.get('error')}")
            t = time.monotonic()
            if row["segment_index"] >= 0 and (t - self.last >= every or self.done == self.total):
                self.last = t
                self.progress(t)

        def progress(self, t: float) -> None:
            elapsed = t - self.started
            rate = self.done / elapsed if elapsed > 0 else 0.0
            eta = f", ETA {(self.total - self.done) / rate:.0f} s" if rate > 0 and self.done < self.total else ""
            bpp = self.bytes * 8 / self.pixels if self.pixels else 0.0
            pct = 100.0 * self.done / self.total if self.total else 100.0
            log(f"segments {self.done}/{self.total} ({pct:.1f}%), {self.failed} failed, archive {bpp:.4f} bpp, "
                f"{rate:.2f} segments/s{eta}")

        def log(self, message: str) -> None:
            log(message)

    return LineEvents()


def encoder_settings(args: argparse.Namespace):
    """The job's options -> EncoderSettings, built as `evc-archive submit` builds them."""
    return loop_settings(args.lpips_threshold, args.quality, args.gop, args.steps, args.seed, args.keyframe_codec,
                         None if args.intra_only else args.residual_levels, inter_fallback=not args.no_inter)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import threading
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")  # compressai's torch.jit.script

    from evc_archive.core.errors import EVCError
    from evc_archive.distributed.submit import SubmitConfig, submit

    address = ray_address(args.address)
    cfg = SubmitConfig(
        source=args.source, archive=args.out,
        settings=encoder_settings(args),
        predictor=args.predictor, workers=args.workers, gpus_per_worker=args.gpus_per_worker, address=address,
        storage_options=args.storage_options, source_options=args.source_options, max_retries=args.retries,
        target_bpp=args.target_bpp, cap_bpp=args.cap_bpp, keyframe_codec=args.keyframe_codec)
    stop = threading.Event()
    install_drain(stop)
    log(f"archiving {args.source} -> {args.out} on Ray ({address or 'local cluster'})")
    try:
        if args.wait_for_gpus:
            from evc_archive.io.store import Store

            Store(args.out, args.storage_options).check_writable()  # a bad location fails before GPUs are paid for
            wait_for_gpus(address, args.wait_for_gpus, args.wait_timeout)
        summary = submit(cfg, make_events(args.progress_seconds), stop)
    except EVCError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to resume", file=sys.stderr, flush=True)
        return 130
    finally:
        if args.wait_for_gpus:
            release_gpus()
    result = {
        "archive": args.out, "videos": summary.videos, "segments_planned": summary.segments_planned,
        "segments_skipped": summary.segments_skipped, "segments_ok": summary.segments_ok,
        "segments_failed": summary.segments_failed, "failed_sources": summary.failed_sources,
        "bytes": summary.bytes, "bpp": round(summary.bpp, 6), "seconds": round(summary.seconds, 3),
        "stopped_early": stop.is_set(),
        "failures": [{"id": sid, "error": err} for sid, err in summary.failures[:MAX_FAILURES_IN_SUMMARY]],
        "failures_total": len(summary.failures),
    }
    if stop.is_set():
        log("stopped early: re-run the same command to finish the archive")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
