"""What the `ray job submit` entry points (jobs.compress, jobs.restore) share: each runs one
`evc-archive` command, with that command's own options, as a Ray job.

- Inside `ray job submit` RAY_ADDRESS is set, and the command gets `--address auto` unless it has an
  `--address`; without either it starts a local Ray cluster, as the CLI does.
- `--wait-for-gpus N` (a job option; the CLI has no autoscaler to wait for) asks the Ray autoscaler
  for N GPUs and waits until they are up before the command sizes its worker pool from the GPUs
  present: with GPU nodes that autoscale from zero there are none when a job starts. The request is
  withdrawn when the job ends, so idle nodes scale down again. The command's location is checked
  first, so a wrong archive fails before GPUs are paid for.
- SIGTERM (`ray job stop`) is handled as the command handles Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

WAIT_TIMEOUT = 900.0


def log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}", file=sys.stderr, flush=True)


def job_options(prog: str, command: str) -> argparse.ArgumentParser:
    """The options a job has beside those of `evc-archive COMMAND`."""
    p = argparse.ArgumentParser(prog=prog, add_help=False, usage=argparse.SUPPRESS,
                                description=f"`evc-archive {command}` as a Ray job: every option of that command "
                                            "(below), and these:")
    p.add_argument("--wait-for-gpus", type=int, default=0, metavar="N",
                   help="Before starting, ask the Ray autoscaler for N GPUs and wait until they are up (GPU workers "
                        "that autoscale from zero). Default 0: use what the cluster has.")
    p.add_argument("--wait-timeout", type=float, default=WAIT_TIMEOUT, metavar="SECONDS",
                   help="Seconds to wait for --wait-for-gpus (default %(default)s); with no GPU by then, exit 1.")
    return p


def command_arguments(command: str, argv: list[str]) -> list[str]:
    """`evc-archive` arguments: COMMAND, argv, and `--address auto` inside `ray job submit`."""
    given = any(a == "--address" or a.startswith("--address=") for a in argv)
    return [command, *argv, *(["--address", "auto"] if os.environ.get("RAY_ADDRESS") and not given else [])]


def command_options(arguments: list[str]) -> dict[str, Any]:
    """`evc-archive` arguments as their command parses them (parameter name -> value); nothing runs
    and nothing is checked (the command itself reports bad options)."""
    import typer.main

    from evc_archive.cli import app

    command = typer.main.get_command(app).commands[arguments[0]]
    return command.make_context(arguments[0], list(arguments[1:]), resilient_parsing=True).params


def wait_for_gpus(address: str | None, gpus: int, timeout: float) -> None:
    """Ask the autoscaler for `gpus` GPUs and wait until the cluster has them (or `timeout` passes)."""
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
    while time.monotonic() < deadline and have < gpus:
        time.sleep(10)
        now_have = ray.cluster_resources().get("GPU", 0)
        if now_have != have:
            have = now_have
            log(f"cluster has {have:g} of {gpus} GPUs")
    if have <= 0:
        raise EVCError(f"no GPU came up in {timeout:.0f} s: check the cluster's GPU node group (quotas, "
                       "instance availability, max workers) or run without --wait-for-gpus to use CPUs")
    if have < gpus:
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


def _sigterm_as_sigint(signum, frame) -> None:
    handler = signal.getsignal(signal.SIGINT)
    if not callable(handler):
        raise KeyboardInterrupt
    handler(signum, frame)


def run_job(prog: str, command: str, argv: list[str], check_location: Callable[[dict[str, Any]], None]) -> int:
    """`evc-archive COMMAND argv` as a Ray job -> the exit code (0 done, 1 a user error in one line,
    2 bad options, 130 interrupted). check_location(parsed options) raises EVCError before a wait."""
    import typer

    from evc_archive.cli import main as cli_main
    from evc_archive.core.errors import EVCError

    parser = job_options(prog, command)
    job, rest = parser.parse_known_args(argv)
    if job.wait_for_gpus < 0 or job.wait_timeout < 0:
        parser.error("--wait-for-gpus and --wait-timeout must be >= 0")
    if "--help" in rest:
        print(parser.format_help())
    arguments = command_arguments(command, rest)
    waits = job.wait_for_gpus > 0 and "--help" not in rest
    previous = signal.signal(signal.SIGTERM, _sigterm_as_sigint)
    try:
        if waits:
            options = command_options(arguments)
            check_location(options)
            wait_for_gpus(options.get("address"), job.wait_for_gpus, job.wait_timeout)
        cli_main(arguments)  # always exits
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except typer.Exit as exc:  # an option the location check could not read (the CLI printed why)
        return exc.exit_code
    except EVCError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        if waits:
            release_gpus()
    return 0
