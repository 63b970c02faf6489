"""submit and restore on a two-node Ray cluster started with `ray start` (two raylets on this
machine, one CPU each), the CLI connecting with --address.

Both nodes have this machine's host name, so the manifest's worker_host cannot tell them apart.
Instead: a separate Ray client sees two alive nodes, and the job needs both: each of the two
workers asks for one CPU and each node has one, so the job can only finish with one worker on
each node (a worker that cannot be placed would leave its segments waiting, and the job hanging).

What Ray 2.60 needs here (found by trying):
- Token authentication. `ray start --head` turns it on by itself when a token file exists
  (~/.ray/auth_token, which any earlier local `ray.init()` creates) and prints "Token
  authentication is enabled", but a joining `ray start --address=...` and a driver's
  `ray.init(address=...)` do NOT turn it on by themselves ("RAY_AUTH_MODE is currently 'disabled'",
  InvalidAuthToken, then "Failed to connect to Ray cluster"). So every process gets the same
  RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (a fresh random token for this test; no file involved).
  Users of `submit --address` against such a cluster need RAY_AUTH_MODE=token (and the token) too.
- Addresses. `ray start` replaces 127.0.0.1 with the machine's own address (resolve_ip_for_localhost),
  so the nodes register under that address; the test still only talks to this machine. The
  dashboard agent and metrics ports are left to the OS (0) so the two raylets do not collide on
  Ray's fixed defaults.
- A temp dir of its own (--temp-dir, both nodes). `ray start` records its cluster's address in
  <temp dir>/ray_current_cluster, and every `ray.init()` without an address on this machine that
  reads the default /tmp/ray joins the cluster named there instead of starting its own: another
  test session (or an `evc-archive submit` without --address) running meanwhile would land on
  this cluster.
- Stopping: not `ray stop --force`, which stops every Ray cluster on the machine (a test session
  running beside this one loses its cluster and its driver exits), but this cluster's processes
  only: those with a marker in their environment and their children (tests/distributed/cluster.py).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from evc_archive.io.manifest import read_manifest
from evc_archive.io.store import Store
from evc_archive.io.video_probe import probe_video
from tests.distributed.cluster import MARKER, cluster_processes, stop_cluster
from tests.distributed.corpus import encode_video, smooth_frames

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).parent / "ray")
VIDEOS = {"alpha": 20, "beta": 12, "gamma": 9}  # name -> frames
GOP = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


ALIVE_NODES = """
import sys, ray
ray.init(address=sys.argv[1], include_dashboard=False, log_to_driver=False, configure_logging=False)
nodes = [n for n in ray.nodes() if n["Alive"]]
print(len(nodes), sorted(n["Resources"].get("CPU", 0) for n in nodes))
ray.shutdown()
"""


def test_submit_and_restore_on_two_nodes(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for seed, (name, n) in enumerate(VIDEOS.items()):
        encode_video(corpus / f"{name}.mp4", smooth_frames(n, 32, 48, seed), gop=GOP)
    planned = sum(-(-n // GOP) for n in VIDEOS.values())
    arch, out = tmp_path / "arch", tmp_path / "out"
    port = free_port()
    address = f"127.0.0.1:{port}"
    marker = uuid.uuid4().hex
    temp_dir = tempfile.mkdtemp(prefix="evc-2n-", dir="/tmp")  # short: Ray's socket paths live below it
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), **{MARKER: marker})
    common = [f"--temp-dir={temp_dir}", "--num-cpus=1", "--num-gpus=0", "--disable-usage-stats",
              "--dashboard-agent-listen-port=0", "--metrics-export-port=0"]
    try:
        head = run([RAY, "start", "--head", f"--port={port}", "--include-dashboard=false", *common], env, 120)
        assert head.returncode == 0, head.stdout + head.stderr
        node = run([RAY, "start", f"--address={address}", *common], env, 120)
        assert node.returncode == 0, node.stdout + node.stderr

        deadline = time.monotonic() + 60  # the second node registers within seconds
        while True:
            seen = run([sys.executable, "-c", ALIVE_NODES, address], env, 120)
            assert seen.returncode == 0, seen.stderr
            if seen.stdout.split()[:1] == ["2"] or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert seen.stdout.strip() == "2 [1.0, 1.0]", seen.stdout

        submit = run([sys.executable, "-m", "evc_archive.cli", "submit", str(corpus), "--out", str(arch),
                      "--address", address, "--workers", "2", "--gop", str(GOP)], env, 300)
        assert submit.returncode == 0, submit.stdout + submit.stderr
        rows = read_manifest(Store(str(arch)))
        assert len(rows) == planned and all(r["status"] == "ok" for r in rows), rows

        restored = run([sys.executable, "-m", "evc_archive.cli", "restore", str(arch), "--out", str(out),
                        "--address", address, "--workers", "2"], env, 300)
        assert restored.returncode == 0, restored.stdout + restored.stderr
        assert sorted(p.name for p in out.iterdir()) == sorted(f"{name}.mkv" for name in VIDEOS)
        for name, n in VIDEOS.items():
            info = probe_video(out / f"{name}.mkv")
            assert (info.frame_count, info.width, info.height) == (n, 48, 32), name
    finally:
        stop_cluster(marker)  # the marked GCS, raylets and daemons, and their children (agents, workers)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert not cluster_processes(marker)
