"""The shared archive of the submit and restore tests: a two-video corpus (20 frames of 48x32 px,
GOP 8) archived once per test module, and checks of what an archive and a restored video hold."""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import torch

from evc_archive.core.runtime import fingerprint
from evc_archive.core.settings import EncoderSettings
from evc_archive.distributed.submit import Events, SubmitConfig, SubmitSummary, submit
from evc_archive.io.video_probe import probe_video
from evc_archive.io.video_read import read_frames
from tests.distributed.corpus import encode_video, mean_psnr, smooth_frames

GOP = 8
SETTINGS = EncoderSettings(gop=GOP)
N, H, W = 20, 32, 48  # frames, height, width of each good corpus video
NAMES = ("alpha", "beta")


class Recorder(Events):
    def __init__(self):
        self.rows, self.logs, self.plans = [], [], []

    def planned(self, summary):
        self.plans.append(summary)

    def row(self, row):
        self.rows.append(dict(row))

    def log(self, message):
        self.logs.append(message)


def make_corpus(root: Path) -> Path:
    """The NAMES videos as mp4 in root, and one file that is not a video."""
    for seed, name in enumerate(NAMES):
        encode_video(root / f"{name}.mp4", smooth_frames(N, H, W, seed), gop=GOP)
    (root / "notes.txt").write_text("not a video, not listed")
    return root


def archive_corpus(corpus: Path, arch: Path) -> tuple[Path, SubmitSummary, Recorder]:
    """The corpus archived into a local folder: (archive path, summary, events)."""
    events = Recorder()
    summary = submit(SubmitConfig(str(corpus), str(arch), SETTINGS, workers=2), events)
    return arch, summary, events


def copy_archive(arch: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(arch, dst)
    return dst


def files(root: Path) -> dict[str, tuple[int, int]]:
    """relative path -> (inode, mtime_ns) of every file below root."""
    return {str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def video_ids(arch_rows) -> dict[str, str]:
    """source file stem -> video id."""
    return {Path(r["source_uri"]).stem: r["video_id"] for r in arch_rows}


def check_restored(path: Path, source: str, rows: list[dict], frames: int, fps: Fraction) -> None:
    """Frame count, rate and size of the restored video; exact per-segment fingerprints (FFV1 is lossless,
    so the restored frames are the decoder's frames); PSNR to the source sane."""
    info = probe_video(path)
    assert info.frame_count == frames, path
    assert info.fps == fps, path
    restored = read_frames(path)
    src = read_frames(source)
    assert restored.shape == src.shape
    for r in rows:
        part = torch.from_numpy(restored[r["start_frame"]:r["end_frame"]].copy())
        assert fingerprint(part) == r["recon_fingerprint"], r["segment_id"]
    if min(src.shape[1:3]) >= 16:
        assert mean_psnr(src, restored) > 15, path
