"""Finding and stopping one test's own Ray processes, and only those.

A test puts a random marker into the environment of what starts its cluster (a CLI subprocess,
`ray start`, or this process around `ray.init`); Ray's GCS, raylet, agents and workers inherit the
environment, and actors keep it after renaming themselves (`ray::SegmentEncoder...`). So the
marker finds exactly that cluster's processes, where `ray stop --force` would stop every Ray
cluster on the machine, a test session running beside this one included (its driver then exits).
"""

from __future__ import annotations

import os

import psutil

MARKER = "EVC_TEST_RAY_CLUSTER"


def _has_marker(p: psutil.Process, entry: bytes) -> bool:
    # The raw bytes, not psutil's environ(): a process that gave itself a long title (Ray's agents:
    # `ray::DashboardAgent`, ...) overwrites the start of its environment block with zeros, and
    # psutil's parser stops at the first empty entry. Searching the block still finds the marker.
    try:
        with open(f"/proc/{p.pid}/environ", "rb") as f:
            return entry in f.read().split(b"\0")
    except FileNotFoundError:  # no /proc (not Linux): psutil's view
        return p.environ().get(MARKER) == entry.split(b"=", 1)[1].decode()


def marked_processes(marker: str) -> list[psutil.Process]:
    """This machine's processes whose environment carries MARKER=marker (this process left out)."""
    entry = f"{MARKER}={marker}".encode()
    found = []
    for p in psutil.process_iter():
        try:
            if p.pid != os.getpid() and _has_marker(p, entry):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ProcessLookupError, PermissionError):
            continue
    return found


def stop_marked(marker: str, grace: float = 10.0) -> list[str]:
    """SIGTERM the marked processes, SIGKILL what is left after `grace` seconds; their names."""
    procs = marked_processes(marker)
    names = []
    for p in procs:
        try:
            names.append(p.name())
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=grace)
    return names
