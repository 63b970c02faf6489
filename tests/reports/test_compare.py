"""`compare`: ours (real encodes at rate control's choice) beside the baselines at matched bpp, on a
small synthetic corpus; CSV, plots and frame grid; clear errors."""

from __future__ import annotations

import csv
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from PIL import Image

from evc_archive.core.errors import EVCError
from evc_archive.io.baselines import BASELINES, encode_baseline, rate_window, sweep_crfs
from evc_archive.io.video_write import write_video
from evc_archive.reports.compare import CompareOptions, run_compare
from tests.distributed.corpus import smooth_frames

TARGETS = (0.05, 0.15)  # x264 reaches only the second at 48x48x10 (its per-GOP overhead keeps it above ~0.09 bpp)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("compare-corpus")
    write_video(root / "waves.mkv", iter(smooth_frames(20, 48, 48, 3)), Fraction(25))
    return root


@pytest.fixture(scope="module")
def compared(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare-out")
    opts = CompareOptions(str(corpus), out, TARGETS, gop=10, codecs=("x264",))
    messages: list[str] = []
    return opts, run_compare(opts, messages.append), messages


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_outputs_exist_and_decode(compared):
    opts, results, messages = compared
    assert [v.name for v in results] == ["waves"]
    for name in ("waves.rd.png", "waves.rd_psnr.png", "waves.grid.png"):
        with Image.open(opts.out_dir / name) as im:
            im.load()
            assert im.width > 200 and im.height > 100
    assert (opts.out_dir / "compare.md").read_text().count("| waves |") == 2 * len(TARGETS)
    assert any("x264 CRF" in m for m in messages) and any("ours at" in m for m in messages)


def assert_sweeps_from_the_floor(sweep: list[dict], codec: str, targets) -> None:
    """A sweep's rows: CRFs from the floor up in the codec's steps, stopping at the first rate past
    SWEEP_REACH x the highest target (or at the top of the range)."""
    from evc_archive.reports.compare import SWEEP_REACH

    crfs = sorted(sweep_crfs(codec), reverse=True)
    assert [r["setting"] for r in sweep] == [f"crf {c}" for c in crfs[:len(sweep)]]
    reach = SWEEP_REACH * max(targets)
    assert all(float(r["bpp"]) < reach for r in sweep[:-1])
    assert float(sweep[-1]["bpp"]) >= reach or len(sweep) == len(crfs)


def test_csv_has_every_setting_and_each_target(compared):
    opts, results, _ = compared
    rows = read_csv(opts.out_dir / "compare.csv")
    x264_sweep = [r for r in rows if r["codec"] == "x264" and r["kind"] == "sweep"]
    reached = []
    assert_sweeps_from_the_floor(x264_sweep, "x264", TARGETS)
    assert sweep_crfs("x264") == list(range(18, 52, 3))
    for t in TARGETS:
        ours = [r for r in rows if r["codec"] == "ours" and r["kind"] == "target" and float(r["target_bpp"]) == t]
        assert len(ours) == 1
        assert float(ours[0]["bpp"]) <= t * 1.0001  # rate control stays within the budget
        assert int(ours[0]["bytes"]) * 8 / (20 * 48 * 48) == pytest.approx(float(ours[0]["bpp"]))
        base = next(r for r in rows if r["codec"] == "x264" and r["kind"] == "target" and float(r["target_bpp"]) == t)
        pts = sorted((float(r["bpp"]), float(r["lpips"])) for r in x264_sweep)
        if not pts[0][0] <= t <= pts[-1][0]:
            assert base["lpips"] == "" and base["note"].startswith("unreachable")
            continue
        reached.append(t)
        # interpolated between the two sweep points around the target
        lo = max(p for p in pts if p[0] <= t)
        hi = min(p for p in pts if p[0] >= t)
        assert min(lo[1], hi[1]) - 1e-9 <= float(base["lpips"]) <= max(lo[1], hi[1]) + 1e-9
    assert reached == [0.15]
    for r in x264_sweep:  # x264 writes its settings as SEI in every GOP: left out of bytes, reported
        assert int(r["sei_bytes"]) > 500


def test_baseline_numbers_are_real_encodes(compared, corpus):
    """A sweep row equals an independent closed-GOP encode of each segment at that CRF."""
    opts, results, _ = compared
    frames = results[0].frames
    rows = read_csv(opts.out_dir / "compare.csv")
    row = next(r for r in rows if r["codec"] == "x264" and r["setting"] == "crf 30")
    parts = [encode_baseline(frames[a:a + 10], "x264", 30, Fraction(25)) for a in (0, 10)]
    # x264's threaded encodes are not bit-reproducible on a loaded machine (measured here: one run in
    # four gave 1127 instead of 1110 bytes for the same GOP): the baselines' measurement noise
    assert int(row["bytes"]) == pytest.approx(sum(p.bytes - p.sei_bytes for p in parts), rel=0.03)
    assert int(row["sei_bytes"]) == sum(p.sei_bytes for p in parts)


def test_ours_curve_more_bits_never_worse(compared):
    """Ours' RD curve (allocations over a grid of targets): bpp up -> LPIPS not worse; each target
    row is a real encode at least as good as the curve's points within its budget."""
    opts, results, _ = compared
    curve = sorted((p.bpp, p.lpips) for p in results[0].points if p.codec == "ours" and p.kind == "sweep")
    assert len(curve) == 16 and curve[0][0] < curve[-1][0]
    for (b0, l0), (b1, l1) in zip(curve, curve[1:]):
        assert l1 <= l0 + 1e-9
    for p in results[0].points:
        if p.codec == "ours" and p.kind == "target":
            within = [l for b, l in curve if b <= p.target_bpp]
            assert p.lpips <= min(within) + 1e-6


def test_every_anchor_sweeps_to_its_floor_and_says_what_its_bytes_count(corpus, tmp_path):
    """Each sweep codes the codec's floor (SVT-AV1: CRF 63); half-size anchors code 24x24, reach
    below the full-size floor, and their rows say that the upscale is a decoder-side step."""
    codecs = ("x264", "x264-half", "svtav1-p2")
    video = run_compare(CompareOptions(str(corpus), tmp_path, (0.15,), gop=10, max_frames=10, codecs=codecs))[0]
    rows = read_csv(tmp_path / "compare.csv")
    for codec in codecs:
        sweep = [r for r in rows if r["codec"] == codec and r["kind"] == "sweep"]
        assert_sweeps_from_the_floor(sweep, codec, (0.15,))
        assert sweep[0]["setting"] == f"crf {BASELINES[codec].floor}"
        assert all(r["note"].startswith("bytes: raw packets less the SEI") for r in sweep)
        assert all(("coded at 24x24, upscaled (Lanczos-3) to 48x48 on the decoder side" in r["note"])
                   == codec.endswith("-half") for r in sweep)
    assert "crf 63" in {r["setting"] for r in rows if r["codec"] == "svtav1-p2"}
    floor = {c: min(p.bpp for p in video.points if p.codec == c and p.kind == "sweep") for c in codecs}
    assert floor["x264-half"] < floor["x264"]
    assert video.baseline_frames[("x264-half", 0.15)][0].shape == video.frames.shape


def test_compare_runs_every_anchor_by_default_and_help_names_each():
    from typer.testing import CliRunner

    from evc_archive.cli import app

    assert CompareOptions("x", Path("o")).codecs == tuple(BASELINES)
    result = CliRunner().invoke(app, ["compare", "--help"], terminal_width=400)
    assert result.exit_code == 0
    for name, spec in BASELINES.items():
        assert name in result.output and f"{name} {spec.sweep_s:g}" in result.output


def test_unreachable_target_is_reported_not_extrapolated(corpus, tmp_path):
    opts = CompareOptions(str(corpus), tmp_path, (0.001, 0.15), gop=10, max_frames=10, codecs=("x264",))
    video = run_compare(opts)[0]
    low = next(p for p in video.points if p.codec == "x264" and p.kind == "target" and p.target_bpp == 0.001)
    assert low.lpips is None and low.note.startswith("unreachable")
    assert "n/a" in (tmp_path / "compare.md").read_text()


def test_source_on_an_fsspec_url(corpus, tmp_path):
    import fsspec

    url = "memory://evc-compare-test/videos/waves.mkv"
    with fsspec.open(url, "wb") as f:
        f.write((corpus / "waves.mkv").read_bytes())
    video = run_compare(CompareOptions("memory://evc-compare-test/videos/", tmp_path, (0.15,), gop=10,
                                       max_frames=10, codecs=("x264",)))[0]
    assert video.name == "waves" and video.frames.shape == (10, 48, 48, 3)
    assert (tmp_path / "waves.grid.png").is_file()


def test_errors_are_one_line(tmp_path):
    with pytest.raises(EVCError, match="does not exist"):
        run_compare(CompareOptions(str(tmp_path / "missing.mp4"), tmp_path / "o"))
    (tmp_path / "junk.mp4").write_bytes(b"junk")
    with pytest.raises(EVCError, match="(?i)cannot read.*not a video"):
        run_compare(CompareOptions(str(tmp_path / "junk.mp4"), tmp_path / "o"))
    cli = subprocess.run([sys.executable, "-m", "evc_archive.cli", "compare", str(tmp_path / "junk.mp4"), "--bpp",
                          "0.02,x", "--out", str(tmp_path / "o2")], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 1 and "Traceback" not in cli.stderr and "--bpp" in cli.stderr
    assert not (tmp_path / "o2").exists()


def test_lpips_vgg_beside_lpips_for_ours_and_the_baselines(compared):
    """Ours' targets carry LPIPS-VGG from their reconstructions, the baseline CRFs of the targets'
    rate window too, baseline targets interpolate it like LPIPS, ours' simulated curve has none."""
    import torch

    from evc_archive.core.dists import dists_frames, shared_dists
    from evc_archive.core.lpips_vgg import lpips_vgg_frames, shared_lpips_vgg

    opts, results, _ = compared
    video = results[0]
    rows = read_csv(opts.out_dir / "compare.csv")
    assert all(r["lpips_vgg"] == r["dists"] == "" for r in rows if r["codec"] == "ours" and r["kind"] == "sweep")
    for t in TARGETS:
        ours = next(r for r in rows if r["codec"] == "ours" and r["kind"] == "target" and float(r["target_bpp"]) == t)
        want = lpips_vgg_frames(shared_lpips_vgg(), torch.from_numpy(video.ours_frames[t]), torch.from_numpy(video.frames))
        assert float(ours["lpips_vgg"]) == pytest.approx(float(want.mean()), abs=1e-5)
        assert float(ours["lpips_vgg"]) != pytest.approx(float(ours["lpips"]), abs=1e-4)
        dists = dists_frames(shared_dists(), torch.from_numpy(video.ours_frames[t]), torch.from_numpy(video.frames))
        assert float(ours["dists"]) == pytest.approx(float(dists.mean()), abs=1e-5)
    x264 = [r for r in rows if r["codec"] == "x264" and r["kind"] == "sweep"]
    window = set(rate_window([float(r["bpp"]) for r in x264], opts.targets))
    assert all((r["lpips_vgg"] != "") == (i in window) for i, r in enumerate(x264))  # scored near the targets only
    sweep = sorted((float(r["bpp"]), float(r["lpips_vgg"])) for r in x264 if r["lpips_vgg"] != "")
    assert all(0.0 < v < 1.0 for _, v in sweep)
    assert all(0.0 < float(r["dists"]) < 1.0 for r in x264 if r["dists"] != "")
    for t in TARGETS:
        base = next(r for r in rows if r["codec"] == "x264" and r["kind"] == "target" and float(r["target_bpp"]) == t)
        if base["lpips"] == "":
            assert base["lpips_vgg"] == base["dists"] == ""
            continue
        lo, hi = max(p for p in sweep if p[0] <= t), min(p for p in sweep if p[0] >= t)
        assert min(lo[1], hi[1]) - 1e-9 <= float(base["lpips_vgg"]) <= max(lo[1], hi[1]) + 1e-9
    assert "| LPIPS | LPIPS-VGG | DISTS | PSNR dB |" in (opts.out_dir / "compare.md").read_text()
