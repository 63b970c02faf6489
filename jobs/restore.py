"""Restore an archive on Ray: the entry point for `ray job submit`, `evc-archive restore` as a job.

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python -m jobs.restore s3://bucket/archive --out /shared/restored --format mp4

    python -m jobs.restore archive/ --out restored/          # local: starts a Ray cluster in-process

It runs `evc-archive restore` (the same options and checks; `--help` lists them) with the job
options of jobs.ray_job (--wait-for-gpus, --wait-timeout). Every video becomes one file with its
source's name, frame count and frame rate. The workers write the files, so --out is a folder on the
machines that run the workers: on a multi-node cluster it must be a shared file system mounted at
the same path on every node (NFS, EFS, Filestore, ...). Exit codes: 0 every video restored, 1 some
video failed (listed) or a user error (one line), 2 bad options, 130 interrupted.
"""

from __future__ import annotations

import sys
from typing import Any

from jobs.ray_job import run_job


def check_archive(options: dict[str, Any]) -> None:
    """The archive must exist and be readable (EVCError otherwise)."""
    from evc_archive.cli.options import storage_options
    from evc_archive.io.archive import open_archive

    if options.get("archive"):
        open_archive(options["archive"], storage_options(options.get("storage_options")))


def main(argv: list[str] | None = None) -> int:
    return run_job("python -m jobs.restore", "restore", sys.argv[1:] if argv is None else list(argv), check_archive)


if __name__ == "__main__":
    sys.exit(main())
