"""The archive report: built from a real archive (local Ray, shipped models), what it holds, what it
says when sources are gone, one clear error for missing or damaged archives; and the page in a
real headless Chromium (no console errors, every image decodes, nothing fetched)."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evc_archive.core.errors import EVCError
from evc_archive.core.settings import EncoderSettings
from evc_archive.distributed.submit import SubmitConfig, submit
from evc_archive.io.manifest import read_manifest
from evc_archive.io.sample import write_sample_video
from evc_archive.io.store import Store
from evc_archive.reports.archive_report import ReportOptions, build_report
from evc_archive.reports.browser_check import check_page, find_browser

pytestmark = pytest.mark.usefixtures("ray_cluster")
SETTINGS = EncoderSettings(gop=15)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report-corpus")
    write_sample_video(root / "meadow.mkv", frames=30)
    write_sample_video(root / "river.mkv", frames=20)
    (root / "broken.mp4").write_bytes(b"this is not a video")
    return root


@pytest.fixture(scope="module")
def archive(corpus, tmp_path_factory) -> Path:
    arch = tmp_path_factory.mktemp("report-archive") / "arch"
    summary = submit(SubmitConfig(str(corpus), str(arch), SETTINGS, workers=2))
    assert (summary.segments_ok, summary.failed_sources) == (4, 1)
    return arch


@pytest.fixture(scope="module")
def report_html(archive) -> str:
    return build_report(ReportOptions(str(archive)))


def images(html: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(m))) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def test_manifest_rows_carry_per_frame_values(archive):
    rows = [r for r in read_manifest(Store(str(archive))) if r["status"] == "ok"]
    for r in rows:
        n = r["end_frame"] - r["start_frame"]
        assert len(r["frame_lpips"]) == len(r["frame_psnr"]) == len(r["frame_coded"]) == n
        assert r["frame_coded"][0] is True and sum(r["frame_coded"]) == r["coded_frames"]
        assert max(r["frame_lpips"]) == pytest.approx(r["lpips_max"], abs=1e-6)
        assert sum(r["frame_lpips"]) / n == pytest.approx(r["lpips_mean"], abs=1e-5)
        assert len(r["frame_lpips_vgg"]) == n and max(r["frame_lpips_vgg"]) == pytest.approx(r["lpips_vgg_max"], abs=1e-6)
        assert sum(r["frame_lpips_vgg"]) / n == pytest.approx(r["lpips_vgg_mean"], abs=1e-5)
        assert len(r["frame_dists"]) == n and sum(r["frame_dists"]) / n == pytest.approx(r["dists_mean"], abs=1e-5)


def test_report_is_self_contained_and_holds_the_archive(report_html, archive):
    html = report_html
    assert not re.search(r'(src|href)="(https?:|//|file:)', html), "the page must not load anything"
    assert "<script" not in html
    rows = read_manifest(Store(str(archive)))
    ok = [r for r in rows if r["status"] == "ok"]
    total = sum(r["bytes"] for r in ok)
    assert f"{total:,}" in html  # total bytes of the segment objects
    bpp = total * 8 / sum((r["end_frame"] - r["start_frame"]) * r["width"] * r["height"] for r in ok)
    assert f"{bpp:.4f}" in html
    frames = [r["end_frame"] - r["start_frame"] for r in ok]
    for key, label in (("lpips_vgg_mean", "LPIPS-VGG"), ("dists_mean", "DISTS")):
        mean = sum(r[key] * n for r, n in zip(ok, frames)) / sum(frames)
        assert f"<b>{mean:.3f}</b><span>mean {label}" in html  # the corpus mean, per frame
        assert all(f"<td>{r[key]:.3f}</td>" in html for r in ok)  # every segment's
    for name in ("meadow.mkv", "river.mkv", "broken.mp4"):
        assert name in html
    failed = next(r for r in rows if r["status"] != "ok")
    assert failed["error"] in html.replace("&#39;", "'").replace("&quot;", '"')
    # the weightless keyframe codec's card comes with the package; the default predictor's weights
    # (restore-int.pt) and its card and loss curve come from the archive's models/
    assert "Model card: AV1 intra keyframe codec" in html and "Model card: restore-hint-int predictor" in html
    assert re.search(r"lpips_threshold</td><td[^>]*><code>0.35<", html) and re.search(r"gop</td><td[^>]*><code>15<", html)
    pngs = images(html)
    # 3 distributions + per video (2): per-frame plot and worst-segment strip + the restoration model's loss curve
    assert len(pngs) == 3 + 2 * 2 + 1
    for im in pngs:
        im.load()
        assert im.width > 50 and im.height > 50
    assert "source not reachable" not in html


def test_strip_shows_source_beside_restored_with_coded_and_generated_frames(report_html):
    strips = [im for im in images(report_html) if im.mode == "RGB" and im.height < 600 and im.width > 900]
    assert len(strips) == 2, [im.size for im in images(report_html)]
    for strip in strips:
        colours = {strip.getpixel((x, y)) for x in range(90, strip.width, 7) for y in (20, 21, 22)}
        assert (31, 119, 180) in colours and (255, 127, 14) in colours  # coded and generated borders


def test_report_says_when_sources_are_gone(archive, corpus, tmp_path):
    moved = shutil.copytree(archive, tmp_path / "arch")
    rows = read_manifest(Store(str(moved)))
    # point the manifest at sources that no longer exist: rewrite it with other source URIs
    from evc_archive.io.manifest import append_rows, part_keys

    for key in part_keys(Store(str(moved))):
        (moved / key).unlink()
    # ... and as a schema-v1 manifest would hold them: no per-frame values
    append_rows(Store(str(moved)), [{**r, "source_uri": str(tmp_path / "nowhere" / Path(r["source_uri"]).name),
                                     "frame_lpips": None, "frame_psnr": None, "frame_coded": None} for r in rows])
    html = build_report(ReportOptions(str(moved)))
    assert html.count("source not reachable") >= 2
    assert "no longer reachable" in html
    assert "no per-frame values" in html
    assert len(images(html)) == 3 + 2 * 2 + 1  # restored frames are still shown


def test_report_of_memory_archive(corpus):
    url = f"memory://evc-report-{uuid.uuid4().hex[:8]}/arch"
    submit(SubmitConfig(str(corpus / "river.mkv"), url, SETTINGS, workers=1))
    html = build_report(ReportOptions(url, max_videos=1))
    assert "river.mkv" in html and "Model card" in html


def test_missing_and_damaged_archives_give_one_clear_error(archive, tmp_path):
    with pytest.raises(EVCError, match="not an evc archive"):
        build_report(ReportOptions(str(tmp_path / "nothing")))
    damaged = shutil.copytree(archive, tmp_path / "damaged")
    part = next((damaged / "manifest").glob("part-*.parquet"))
    part.write_bytes(part.read_bytes()[:100])
    with pytest.raises(EVCError, match="damaged") as info:
        build_report(ReportOptions(str(damaged)))
    assert "\n" not in str(info.value)
    (damaged / "archive.json").write_text("{not json")
    part.unlink()
    with pytest.raises(EVCError, match="archive.json.*damaged"):
        build_report(ReportOptions(str(damaged)))


def test_cli_report_writes_file_or_nothing(archive, tmp_path):
    out = tmp_path / "r" / "report.html"
    ok = subprocess.run([sys.executable, "-m", "evc_archive.cli", "report", str(archive), "--out", str(out),
                         "--max-videos", "1"], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert out.is_file() and out.read_text().startswith("<!DOCTYPE html>")
    bad = subprocess.run([sys.executable, "-m", "evc_archive.cli", "report", str(tmp_path / "none"), "--out",
                          str(tmp_path / "bad.html")], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("error: ") and "not an evc archive" in bad.stderr
    assert not (tmp_path / "bad.html").exists()


def test_report_renders_in_headless_chromium(report_html, tmp_path):
    assert find_browser() is not None, "Chromium and chromedriver are needed: apt-get install chromium chromium-driver " \
                                       "(scripts/bootstrap.sh --browser does it; .ci/run runs that)"
    page = tmp_path / "report.html"
    page.write_text(report_html)
    shot = tmp_path / "report.png"
    result = check_page(page, shot)
    assert result.title.startswith("evc-archive report")
    assert result.console_errors == ()
    assert result.images == 3 + 2 * 2 + 1 and result.images_not_decoded == ()
    assert result.network_requests == ()
    screenshot = Image.open(shot)
    assert screenshot.width == 1200 and screenshot.height == min(result.page_height, 20000) > 1000
    # the page really painted: not one flat colour
    pixels = np.asarray(screenshot.convert("RGB").resize((64, 256))).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 50


def test_browser_check_catches_a_broken_page(tmp_path):
    """The check can fail: a console error and an image that does not decode are both reported."""
    assert find_browser() is not None
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><head><title>t</title></head><body>'
                    '<img alt="bad" src="data:image/png;base64,AAAA"><script>console.error("boom")</script></body></html>')
    result = check_page(page)
    assert result.images_not_decoded == ("bad",)
    assert any("boom" in e for e in result.console_errors)
    assert not result.ok


def test_totals_give_no_reported_mean_of_a_subset():
    from evc_archive.reports.archive_report import totals

    def row(vgg, n):
        return {"video_id": "v", "status": "ok", "start_frame": 0, "end_frame": n, "width": 4, "height": 4,
                "bytes": 1, "lpips_mean": 0.1, "psnr_mean": 30.0, "lpips_vgg_mean": vgg, "dists_mean": vgg}

    both = totals([row(0.2, 10), row(0.5, 30)])
    assert both.lpips_vgg_mean == pytest.approx(0.425) and both.dists_mean == pytest.approx(0.425)  # per frame
    mixed = totals([row(0.2, 10), row(None, 30)])  # a v3 segment among them
    assert mixed.lpips_vgg_mean is None and mixed.dists_mean is None
