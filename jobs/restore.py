"""Restore an archive on Ray: the entry point for `ray job submit` (same job as `evc-archive restore`).

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/restore.py s3://bucket/archive --out /shared/restored --format mp4

    python jobs/restore.py archive/ --out restored/          # local: starts a Ray cluster in-process

Every video becomes one file with its source's name, frame count and frame rate. The workers write
the files, so --out is a folder on the machines that run the workers: on a multi-node cluster it
must be a shared file system mounted at the same path on every node (NFS, EFS, Filestore, ...).
Inside `ray job submit` the driver attaches with `address="auto"` (RAY_ADDRESS is set); without
RAY_ADDRESS and without --address it starts a local Ray cluster. Progress is one plain line per
video on stderr; the last line on stdout is a JSON summary. Exit codes: 0 every video restored,
1 some video failed (listed) or a user error (one line), 2 bad options, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parent))

from compress import log, ray_address, release_gpus, wait_for_gpus  # noqa: E402 - jobs/compress.py

MAX_FAILURES_IN_SUMMARY = 50


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Decode an archive back into videos with their sources' names, frame counts and frame rates.")
    p.add_argument("archive", help="Archive location (fsspec URL or folder).")
    p.add_argument("--out", required=True, type=Path,
                   help="Folder for the restored videos, on the machines running the workers "
                        "(a shared file system on multi-node clusters).")
    p.add_argument("--videos", default=None, help="Only videos whose id or source file name matches this glob.")
    p.add_argument("--format", choices=("mkv", "mp4"), default="mkv",
                   help="'mkv' (lossless FFV1) or 'mp4' (H.264 at --crf) (default %(default)s).")
    p.add_argument("--crf", type=int, default=18, help="x264 CRF for mp4 output, 0-51 (default %(default)s).")
    p.add_argument("--workers", type=int, default=None, help="Ray workers (default: one per GPU, else one per CPU).")
    p.add_argument("--address", default=None,
                   help="Ray cluster address; default: 'auto' when RAY_ADDRESS is set (inside `ray job submit`), "
                        "else a local cluster.")
    p.add_argument("--storage-options", default=None, help="JSON of fsspec options for the archive.")
    p.add_argument("--wait-for-gpus", type=int, default=0, metavar="N",
                   help="Before starting, ask the Ray autoscaler for N GPUs and wait until they are up "
                        "(GPU workers that autoscale from zero). Default 0: use what the cluster has.")
    p.add_argument("--wait-timeout", type=float, default=900.0,
                   help="Seconds to wait for --wait-for-gpus (default %(default)s).")
    args = p.parse_args(argv)
    if not 0 <= args.crf <= 51:
        p.error("--crf must be between 0 and 51")
    if args.workers is not None and args.workers < 1:
        p.error("--workers must be >= 1")
    if args.wait_for_gpus < 0:
        p.error("--wait-for-gpus must be >= 0")
    text, args.storage_options = args.storage_options, {}
    if text:
        try:
            args.storage_options = json.loads(text)
        except json.JSONDecodeError as exc:
            p.error(f"--storage-options is not valid JSON ({exc.msg})")
        if not isinstance(args.storage_options, dict):
            p.error("--storage-options must be a JSON object, e.g. '{\"anon\": true}'")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")  # compressai's torch.jit.script
    from evc_archive.core.errors import EVCError
    from evc_archive.distributed.restore import RestoreConfig, restore

    address = ray_address(args.address)
    cfg = RestoreConfig(archive=args.archive, out_dir=args.out, videos=args.videos, workers=args.workers,
                        address=address, storage_options=args.storage_options, extension=f".{args.format}",
                        crf=args.crf)
    log(f"restoring {args.archive} -> {args.out} on Ray ({address or 'local cluster'})")
    started = time.perf_counter()
    done = 0

    def on_video(report) -> None:
        nonlocal done
        done += 1
        if report["status"] == "ok":
            log(f"[{done}] ok {report['video_id']}: {report['frames']} frames -> {report['path']} "
                f"({report['seconds']:.1f} s)")
        else:
            log(f"[{done}] failed {report['video_id']}: {report.get('error')}")

    try:
        if args.wait_for_gpus:
            from evc_archive.io.store import Store

            try:  # a wrong archive fails before GPUs are paid for
                found = Store(args.archive, args.storage_options).exists("archive.json")
            except EVCError:
                raise
            except Exception as exc:  # noqa: BLE001 - missing bucket, credentials
                raise EVCError(f"cannot read archive '{args.archive}': {exc}") from None
            if not found:
                raise EVCError(f"'{args.archive}' is not an evc archive (no archive.json)")
            wait_for_gpus(address, args.wait_for_gpus, args.wait_timeout)
        reports = restore(cfg, on_video)
    except EVCError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        return 130
    finally:
        if args.wait_for_gpus:
            release_gpus()
    ok = [r for r in reports if r["status"] == "ok"]
    failed = [r for r in reports if r["status"] != "ok"]
    result = {
        "archive": args.archive, "out": str(args.out), "videos_ok": len(ok), "videos_failed": len(failed),
        "frames": sum(r["frames"] for r in ok), "seconds": round(time.perf_counter() - started, 3),
        "failures": [{"video_id": r["video_id"], "error": r.get("error")} for r in failed[:MAX_FAILURES_IN_SUMMARY]],
    }
    print(json.dumps(result), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
