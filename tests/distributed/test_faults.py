"""Faults on a real Ray cluster: a worker process killed (SIGKILL) while it encodes, and the driver
killed (SIGKILL, with its whole process group) mid-job and then re-run.

Both must end with every planned segment exactly once in the manifest, all ok, and an archive that
restores to exactly the frames an uninterrupted run restores to. No test hooks in the product: the
worker is found by its process title (Ray names an actor's process `ray::SegmentEncoder...`), the
driver is a CLI subprocess in its own session.

One Ray cluster at a time: each test starts (and shuts down) its own; the CLI subprocesses start
theirs while no in-process cluster runs. The worker to kill is a descendant of this process (the
in-process cluster's raylet is its child), and what is left of a killed driver's cluster is found
by its marker and process tree (tests/distributed/cluster.py): this test's processes only, never
another session's (no `ray stop --force`, which stops every Ray cluster on the machine).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil
import pytest

from evc_archive.core.registry import DEFAULT_PREDICTOR
from evc_archive.core.settings import EncoderSettings
from evc_archive.distributed.plan import segment_key
from evc_archive.distributed.restore import RestoreConfig, restore
from evc_archive.distributed.submit import Events, SubmitConfig, submit
from evc_archive.io.manifest import part_keys, read_all_rows, read_manifest
from evc_archive.io.store import Store
from evc_archive.io.video_read import read_frames
from tests.distributed.cluster import MARKER, cluster_processes, family, stop_cluster
from tests.distributed.corpus import encode_video, smooth_frames

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


class Recorder(Events):
    def __init__(self):
        self.rows, self.logs = [], []

    def row(self, row):
        self.rows.append(dict(row))

    def log(self, message):
        self.logs.append(message)


@contextmanager
def local_ray(num_cpus: int = 2):
    """A new local Ray cluster in this process for the block (the pipeline's init_ray reuses it)."""
    import ray

    if ray.is_initialized():  # never two clusters at once
        ray.shutdown()
    # "local": a new cluster even where a `ray start` on this machine left an address to join
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def make_corpus(root: Path, videos: int, frames: int, h: int, w: int, gop: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(videos):
        encode_video(root / f"clip{i}.mp4", smooth_frames(frames, h, w, seed=10 + i), gop=gop)
    return root


def segment_objects(arch: Path) -> list[Path]:
    """Finished segment objects (not the temporary files of writes in progress)."""
    return [p for p in (arch / "segments").rglob("*.evc") if not p.name.startswith(".")] if arch.exists() else []


def restored_frames(arch: Path, out: Path) -> dict[str, np.ndarray]:
    """Restore an archive (FFV1, lossless) and read every video back: {file name: (n,H,W,3)}."""
    reports = restore(RestoreConfig(str(arch), out))
    assert reports and all(r["status"] == "ok" for r in reports), reports
    return {p.name: read_frames(p) for p in sorted(out.iterdir())}


def check_exactly_once(arch: Path, planned: int) -> list[dict]:
    """After a finished job: one manifest part, every segment once in it, all ok, each object there."""
    store = Store(str(arch))
    assert len(part_keys(store)) == 1
    rows = read_all_rows(store)
    counts = Counter(r["segment_id"] for r in rows)
    assert len(counts) == planned, (len(counts), planned)
    assert max(counts.values()) == 1, [sid for sid, n in counts.items() if n > 1]
    assert all(r["status"] == "ok" for r in rows), [(r["segment_id"], r["error"]) for r in rows if r["status"] != "ok"]
    for r in rows:
        assert r["object_key"] == segment_key(r["video_id"], r["segment_index"])
        assert (arch / r["object_key"]).stat().st_size == r["bytes"]
    assert len(segment_objects(arch)) == planned
    return rows


def check_same_archive(arch: Path, reference: Path, tmp_path: Path) -> None:
    """Same segments with the same decoded fingerprints, and identical restored frames per video."""
    mine = {r["segment_id"]: r["recon_fingerprint"] for r in read_manifest(Store(str(arch)))}
    theirs = {r["segment_id"]: r["recon_fingerprint"] for r in read_manifest(Store(str(reference)))}
    assert mine == theirs
    a = restored_frames(arch, tmp_path / "restored-faulted")
    b = restored_frames(reference, tmp_path / "restored-reference")
    assert sorted(a) == sorted(b) and a
    for name in a:
        assert a[name].shape == b[name].shape, name
        assert np.array_equal(a[name], b[name]), name


# -- a worker killed mid-job ------------------------------------------------------------------------
def encoder_processes() -> list[psutil.Process]:
    """The in-process cluster's SegmentEncoder actors: descendants of this process (its raylet is a
    child) titled `ray::SegmentEncoder...` by Ray."""
    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if " ".join(p.cmdline()).startswith("ray::SegmentEncoder"):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def test_worker_killed_mid_job_is_replaced_and_the_job_completes(tmp_path):
    gop = 4
    corpus = make_corpus(tmp_path / "corpus", videos=3, frames=16, h=48, w=64, gop=gop)  # 12 segments
    planned = 3 * 16 // gop
    arch, reference = tmp_path / "arch", tmp_path / "reference"
    settings = EncoderSettings(gop=gop)
    killed: list[int] = []
    done = threading.Event()

    def killer():
        """Once a segment is stored (work is in flight then), SIGKILL one encoder process."""
        deadline = time.monotonic() + 120
        while not done.is_set() and time.monotonic() < deadline:
            if segment_objects(arch):
                procs = encoder_processes()
                if procs:
                    os.kill(procs[0].pid, signal.SIGKILL)
                    killed.append(procs[0].pid)
                    return
            time.sleep(0.02)

    with local_ray():
        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        events = Recorder()
        try:
            summary = submit(SubmitConfig(str(corpus), str(arch), settings, workers=2), events)
        finally:
            done.set()
            thread.join(10)
        assert len(killed) == 1, "no encoder process was killed: the job ended before one could be"
        # the dead worker was noticed and replaced, its segments in flight retried, none lost or doubled
        # (replaced once, although each of its calls in flight fails with the actor's death)
        assert sum("died" in m and "starting a new one" in m for m in events.logs) == 1, events.logs
        assert any("retrying" in m for m in events.logs), events.logs
        assert (summary.segments_planned, summary.segments_ok, summary.segments_failed) == (planned, planned, 0)
        assert sorted(r["segment_id"] for r in events.rows) == sorted({r["segment_id"] for r in events.rows})
        rows = check_exactly_once(arch, planned)
        assert max(r["attempts"] for r in rows) >= 2  # the killed worker's segments were encoded again

        ref = submit(SubmitConfig(str(corpus), str(reference), settings, workers=2))
        assert (ref.segments_ok, ref.segments_failed) == (planned, 0)
        check_same_archive(arch, reference, tmp_path)


# -- the driver killed mid-job, then re-run ---------------------------------------------------------
def cli_submit(corpus: Path, arch: Path, gop: int, marker: str, **kwargs) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env[MARKER] = marker
    return subprocess.Popen([sys.executable, "-m", "evc_archive.cli", "submit", str(corpus), "--out", str(arch),
                             "--gop", str(gop), "--workers", "1"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def test_driver_killed_mid_job_then_rerun_completes_each_segment_once(tmp_path):
    gop = 4
    corpus = make_corpus(tmp_path / "corpus", videos=4, frames=16, h=64, w=64, gop=gop)  # 16 segments
    planned = 4 * 16 // gop
    arch = tmp_path / "arch"
    marker = uuid.uuid4().hex
    manifest = arch / "manifest"
    driver = cli_submit(corpus, arch, gop, marker, start_new_session=True)
    tree: list[psutil.Process] = []  # the driver and its cluster, taken just before the kill
    try:
        # wait for a recorded batch of rows (a manifest part) while the job still runs, then SIGKILL
        # the driver's whole process group
        deadline = time.monotonic() + 180
        while driver.poll() is None and time.monotonic() < deadline:
            if manifest.exists() and any(p.name.startswith("part-") for p in manifest.iterdir()):
                break
            time.sleep(0.02)
        assert driver.poll() is None, f"the job ended before it could be killed:\n{driver.communicate()[1]}"
        assert time.monotonic() < deadline, "no manifest part appeared"
        tree = family([psutil.Process(driver.pid)])
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(30)
    finally:
        if driver.poll() is None:
            tree = family([psutil.Process(driver.pid)])
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(30)
        # its Ray workers outlive it by a few seconds (they have process groups of their own)
        stop_cluster(marker, tree)
    assert driver.returncode == -signal.SIGKILL
    assert not cluster_processes(marker, tree), "processes of the killed job's cluster are still running"

    store = Store(str(arch))
    before = {r["segment_id"]: r for r in read_manifest(store)}
    assert 1 <= len(before) < planned, f"{len(before)} of {planned} segments recorded when the driver was killed"
    assert all(r["status"] == "ok" for r in before.values())

    # the same command again: it resumes
    marker2 = uuid.uuid4().hex
    rerun = cli_submit(corpus, arch, gop, marker2)
    try:
        out, err = rerun.communicate(timeout=240)
    finally:
        stop_cluster(marker2, family([psutil.Process(rerun.pid)]) if rerun.poll() is None else ())
        rerun.wait(30)
    assert rerun.returncode == 0, err
    rows = check_exactly_once(arch, planned)
    by_id = {r["segment_id"]: r for r in rows}
    for sid, r in before.items():  # recorded segments were skipped, not encoded again
        assert by_id[sid]["created_at"] == r["created_at"], sid
    assert f"{len(before)} already archived" in " ".join(err.split()), err

    # an uninterrupted run of the same job (the CLI's settings), then restores of both
    reference = tmp_path / "reference"
    settings = EncoderSettings.product(gop=gop)
    with local_ray():
        ref = submit(SubmitConfig(str(corpus), str(reference), settings, DEFAULT_PREDICTOR, workers=1))
        assert (ref.segments_ok, ref.segments_failed) == (planned, 0)
        check_same_archive(arch, reference, tmp_path)
