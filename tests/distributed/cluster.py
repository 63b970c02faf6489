"""Finding and stopping one test's own Ray processes, and only those (never `ray stop --force`,
which stops every Ray cluster on the machine: a test session running beside this one loses its
cluster, and its driver exits).

A test puts a random marker into the environment of what starts its cluster (a CLI subprocess,
`ray start`); Ray's GCS and raylet inherit it and start everything else (agents, workers) as their
children. A cluster's processes are then the marked ones and all their descendants. The marker
alone is not enough: a process that retitles itself (`ray::DashboardAgent`, `ray::IDLE`, ...) may
overwrite its environment block in /proc, so the tree is taken while the parents live.
"""

from __future__ import annotations

import os
import time
from typing import Iterable

import psutil

MARKER = "EVC_TEST_RAY_CLUSTER"


def _has_marker(p: psutil.Process, entry: bytes) -> bool:
    try:
        with open(f"/proc/{p.pid}/environ", "rb") as f:  # raw: psutil's parser stops at a wiped entry
            return entry in f.read().split(b"\0")
    except FileNotFoundError:  # no /proc (not Linux): psutil's view
        return p.environ().get(MARKER) == entry.split(b"=", 1)[1].decode()


def marked_processes(marker: str) -> list[psutil.Process]:
    """This machine's processes whose environment (still) shows MARKER=marker (this one left out)."""
    entry = f"{MARKER}={marker}".encode()
    found = []
    for p in psutil.process_iter():
        try:
            if p.pid != os.getpid() and _has_marker(p, entry):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ProcessLookupError, PermissionError):
            continue
    return found


def _alive(p: psutil.Process) -> bool:
    """Running and not a zombie (an orphaned zombie waits for init, not for us)."""
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False


def family(procs: Iterable[psutil.Process]) -> list[psutil.Process]:
    """The processes and all their living descendants (by pid, once each)."""
    out: dict[int, psutil.Process] = {}
    for p in procs:
        out.setdefault(p.pid, p)
        try:
            for c in p.children(recursive=True):
                out.setdefault(c.pid, c)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return list(out.values())


def cluster_processes(marker: str, also: Iterable[psutil.Process] = ()) -> list[psutil.Process]:
    """A test's cluster now: the marked processes, `also`, and their descendants, still running."""
    return [p for p in family([*marked_processes(marker), *also]) if _alive(p) and p.pid != os.getpid()]


def _wait(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until they are gone (or zombies) or the time is up; those still alive."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in procs if _alive(p)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def stop(procs: Iterable[psutil.Process], grace: float = 10.0) -> list[str]:
    """SIGTERM, then SIGKILL what is left after `grace` seconds; the names of what was running.
    (psutil's Process checks the pid still names the same process before signalling it.)"""
    procs = [p for p in procs if _alive(p)]
    names = []
    for p in procs:
        try:
            names.append(p.name())
            p.terminate()
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            pass
    for p in _wait(procs, grace):
        try:
            p.kill()
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            pass
    _wait(procs, grace)
    return names


def stop_cluster(marker: str, also: Iterable[psutil.Process] = ()) -> list[str]:
    """Stop a test's cluster (see cluster_processes); the names of what was still running."""
    return stop(cluster_processes(marker, also))
