"""The archive commands end to end in subprocesses: submit, ls, restore, verify (each starts its own
local Ray, one at a time), and one clear line with exit code 1 for unusable locations."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from evc_archive.io.manifest import read_manifest
from evc_archive.io.store import Store
from evc_archive.io.video_probe import probe_video
from tests.distributed.corpus import encode_video, smooth_frames

pytestmark = pytest.mark.slow


def cli(*args, timeout=300, columns: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(columns)} if columns else None  # rich tables wrap at 80 columns otherwise
    return subprocess.run([sys.executable, "-m", "evc_archive.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def assert_one_error_line(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr and result.stdout.strip() == "", (result.stdout, result.stderr)
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli-corpus")
    encode_video(root / "alpha.mp4", smooth_frames(16, 32, 48, 0))
    encode_video(root / "beta.mp4", smooth_frames(16, 32, 48, 1))
    return root


def test_submit_ls_verify_restore(corpus, tmp_path):
    arch = tmp_path / "arch"
    result = cli("submit", corpus, "--out", arch, "--gop", 8, "--workers", 1)
    assert result.returncode == 0, result.stderr
    table = dict(re.findall(r"│\s*([a-z ]+?)\s*│\s*([0-9.]+)\s*│", result.stdout))
    assert (table["videos"], table["segments planned"], table["encoded now"], table["failed segments"]) == (
        "2", "4", "4", "0"), result.stdout
    assert "Traceback" not in result.stderr
    rows = read_manifest(Store(str(arch)))
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)

    listing = cli("ls", arch, columns=250)
    assert listing.returncode == 0, listing.stderr
    for r in rows:
        assert r["video_id"] in listing.stdout
    assert "LPIPS-VGG" in listing.stdout and "DISTS" in listing.stdout
    for vid in {r["video_id"] for r in rows}:  # each video's line shows its mean LPIPS-VGG and DISTS
        line = next(line for line in listing.stdout.splitlines() if vid in line)
        for key in ("lpips_vgg_mean", "dists_mean"):
            values = [r[key] for r in rows if r["video_id"] == vid]
            assert f"{sum(values) / len(values):.3f}" in line, (key, line)

    # damage one segment of alpha: verify names it and exits 1
    victim = next(r for r in rows if r["video_id"].startswith("alpha") and r["segment_index"] == 1)
    path = arch / victim["object_key"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    checked = cli("verify", arch, "--workers", 1)
    assert checked.returncode == 1, (checked.stdout, checked.stderr)
    assert "4 segments: 1 damaged, 3 ok" in checked.stdout
    assert re.search(rf"damaged.*{re.escape(victim['segment_id'])}", checked.stderr), checked.stderr

    # restore the undamaged video only, by source name
    out = tmp_path / "out"
    restored = cli("restore", arch, "--out", out, "--videos", "beta*", "--workers", 1)
    assert restored.returncode == 0, restored.stderr
    assert "restored 1 videos (16 frames)" in restored.stdout
    assert [p.name for p in out.iterdir()] == ["beta.mkv"]
    info = probe_video(out / "beta.mkv")
    assert (info.frame_count, info.width, info.height, info.fps) == (16, 48, 32, Fraction(25))


def test_unusable_locations_give_one_line_and_exit_1(corpus, tmp_path, moto_s3):
    (tmp_path / "file.txt").write_text("x")
    under_file = tmp_path / "file.txt" / "arch"
    assert_one_error_line(cli("submit", corpus, "--out", under_file), str(under_file), "cannot write")
    assert not under_file.exists()

    opts = json.dumps(moto_s3.options())
    assert_one_error_line(cli("submit", corpus, "--out", "s3://no-such-bucket-evc/arch", "--storage-options", opts),
                          "s3://no-such-bucket-evc/arch", "bucket does not exist")
    bad_key = json.dumps(moto_s3.options("wrong", "wrong"))
    moto_s3.client.create_bucket(Bucket="evc-cli-creds")
    moto_s3.require_credentials(True)
    try:
        result = cli("submit", corpus, "--out", "s3://evc-cli-creds/arch", "--storage-options", bad_key,
                     "--source-options", "{}")
    finally:
        moto_s3.require_credentials(False)
    assert_one_error_line(result, "s3://evc-cli-creds/arch", "Access Key")

    assert_one_error_line(cli("restore", "s3://no-such-bucket-evc/arch", "--out", tmp_path / "o", "--storage-options",
                              opts), "s3://no-such-bucket-evc/arch", "not an evc archive")
