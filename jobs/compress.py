"""Archive a video corpus on Ray: the entry point for `ray job submit`, `evc-archive submit` as a job.

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python -m jobs.compress s3://bucket/videos/ --out s3://bucket/archive --gpus-per-worker 1 \
        --wait-for-gpus 16     # GPU nodes that autoscale from zero: bring them up before dispatch

    python -m jobs.compress videos/ --out archive/                 # local: starts a Ray cluster in-process
    python -m jobs.compress videos/ --out archive/ --address auto  # attach to `ray start --head`

It runs `evc-archive submit` (the same options, defaults and checks; `--help` lists them) with the
job options of jobs.ray_job (--wait-for-gpus, --wait-timeout). Re-running the same command resumes:
finished segments are skipped, never duplicated. SIGINT/SIGTERM (`ray job stop`) stops dispatching
and lets segments in flight finish; a second signal aborts (rows already written stay, the rest is
redone on resume). Exit codes: 0 done (failed segments are logged and in the manifest), 1 with one
line on stderr for a user error (bad archive location, no videos, settings that differ from the
archive's), 2 for bad options, 130 interrupted.
"""

from __future__ import annotations

import sys
from typing import Any

from jobs.ray_job import run_job


def check_archive(options: dict[str, Any]) -> None:
    """The archive location must be writable (EVCError otherwise)."""
    from evc_archive.cli.options import storage_options
    from evc_archive.io.store import Store

    if options.get("out"):
        Store(options["out"], storage_options(options.get("storage_options"))).check_writable()


def main(argv: list[str] | None = None) -> int:
    return run_job("python -m jobs.compress", "submit", sys.argv[1:] if argv is None else list(argv), check_archive)


if __name__ == "__main__":
    sys.exit(main())
