"""Commands on an archive: submit (Ray), restore (Ray), ls, verify (Ray), report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import Progress
from rich.table import Table

from evc_archive.cli.app import app, console, fail, job_progress, stdout
from evc_archive.cli.options import (
    DEFAULT_KEYFRAME_CODEC,
    DEFAULT_PREDICTOR,
    PRODUCT,
    Gop,
    IntraOnly,
    KeyframeCodec,
    NoInter,
    Predictor,
    Quality,
    ResidualLevels,
    Search,
    Seed,
    Steps,
    StorageOptions,
    Threshold,
    coding_settings,
)
from evc_archive.cli.options import storage_options as parse_storage_options
from evc_archive.distributed.plan import DEFAULT_WORKER_MEMORY_GIB


class _SubmitView:
    """Rich progress for a submit job: segments done/total, bpp so far, failures, ETA. Where the
    console is not a terminal (a Ray job's log), a progress line every LOG_SECONDS instead."""

    LOG_SECONDS = 30.0

    def __init__(self, progress: Progress):
        import time

        self.progress = progress
        self.task = progress.add_task("archiving", total=None, info="")
        self.bytes = self.pixels = self.failed = self.done = 0
        self.clock = time.monotonic
        self.started = self.last_log = self.clock()

    def planned(self, summary) -> None:
        self.bytes, self.pixels = summary.bytes, summary.pixels
        todo = summary.segments_planned - summary.segments_skipped
        self.progress.update(self.task, total=todo, completed=0)
        self.progress.console.log(f"{summary.videos} videos, {summary.segments_planned} segments planned, "
                                  f"{summary.segments_skipped} already archived, {summary.failed_sources} unusable sources")

    def row(self, row) -> None:
        if row["segment_index"] >= 0:
            self.done += 1
        if row["status"] == "ok":
            self.bytes += row.get("bytes") or 0
            self.pixels += (row["end_frame"] - row["start_frame"]) * row["width"] * row["height"]
        else:
            self.failed += 1
            self.progress.console.log(f"[red]failed[/] {row['segment_id']}: {row.get('error')}", highlight=False)
        bpp = self.bytes * 8 / self.pixels if self.pixels else 0.0
        self.progress.update(self.task, completed=self.done, info=f"{bpp:.4f} bpp, {self.failed} failed")
        if not self.progress.console.is_terminal and self.clock() - self.last_log >= self.LOG_SECONDS:
            self.last_log = self.clock()
            total = self.progress.tasks[0].total or 0
            elapsed = self.last_log - self.started
            eta = elapsed / self.done * (total - self.done) if self.done else 0.0
            self.log(f"{self.done}/{total} segments, {bpp:.4f} bpp, {self.failed} failed, "
                     f"{elapsed:.0f} s elapsed, about {eta:.0f} s left")

    def log(self, message: str) -> None:
        self.progress.console.log(message, highlight=False)


def _install_drain(stop) -> None:
    """First Ctrl-C: stop dispatching and let work in flight finish (resumable); second: abort."""
    import signal

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        console.print("[yellow]draining: finishing segments in flight (Ctrl-C again to abort; re-run to resume)[/]")

    signal.signal(signal.SIGINT, handler)


def _print_summary(summary, out: str, target_bpp: float | None) -> None:
    """The finished (or drained) submit job as a table, and rate control's note."""
    table = Table(title=f"archive {out}")
    table.add_column("")
    table.add_column("value", justify="right")
    for key, value in [("videos", summary.videos), ("segments planned", summary.segments_planned),
                       ("already archived", summary.segments_skipped), ("encoded now", summary.segments_ok),
                       ("failed segments", summary.segments_failed), ("unusable sources", summary.failed_sources),
                       ("archive bytes", summary.bytes), ("archive bpp", f"{summary.bpp:.4f}"),
                       ("target bpp", "-" if target_bpp is None else f"{target_bpp:g}"),
                       ("seconds", f"{summary.seconds:.1f}")]:
        table.add_row(key, str(value))
    stdout.print(table)
    if summary.rate_note:
        console.print(f"[yellow]rate control:[/] {summary.rate_note}; the closest settings were used", highlight=False)


@app.command("sample-corpus")
def sample_corpus(
    folder: Annotated[Path, typer.Argument(help="Folder to write the sample corpus into (created if missing).")],
) -> None:
    """Write the embedded sample corpus (generated, nothing downloaded): one 640x360 and two 128x128
    videos plus one damaged file, to try `submit` and `restore` on."""
    from evc_archive.io.sample import SAMPLE_CORPUS, write_sample_corpus

    write_sample_corpus(folder)
    for name, frames, h, w, _ in SAMPLE_CORPUS:
        stdout.print(f"{folder / name}.mkv: {frames} frames {w}x{h} @ 25 fps (generated)", highlight=False)
    stdout.print(f"{folder / 'damaged.mp4'}: a damaged file (archiving reports it as failed)", highlight=False)


@app.command()
def submit(
    source: Annotated[str, typer.Argument(help="Corpus: a folder, a glob ('videos/*.mp4'), an fsspec URL prefix (s3://bucket/videos/) or an input manifest (.parquet/.csv with a 'uri' column).")],
    out: Annotated[str, typer.Option("--out", help="Archive location: any fsspec URL or local folder.")],
    lpips_threshold: Threshold = PRODUCT.lpips_threshold,
    quality: Quality = None,
    gop: Gop = PRODUCT.gop,
    target_bpp: Annotated[Optional[float], typer.Option(help="Corpus-level target bpp: rate control picks quality and threshold per segment for the best LPIPS within the budget (overrides --quality and --lpips-threshold).")] = None,
    cap_bpp: Annotated[Optional[float], typer.Option(help="Hard cap on every segment's bpp (with --target-bpp).")] = None,
    steps: Steps = PRODUCT.sampling_steps,
    seed: Seed = PRODUCT.seed,
    predictor: Predictor = DEFAULT_PREDICTOR,
    keyframe_codec: KeyframeCodec = DEFAULT_KEYFRAME_CODEC,
    residual_levels: ResidualLevels = PRODUCT.residual_levels,
    intra_only: IntraOnly = False,
    no_inter: NoInter = False,
    search: Search = PRODUCT.search,
    workers: Annotated[Optional[int], typer.Option(help="Ray workers (default: one per GPU, else one per CPU).")] = None,
    gpus_per_worker: Annotated[float, typer.Option(help="GPUs per worker where the cluster has GPUs.")] = 1.0,
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address (e.g. 'auto' or 'ray://head:10001'); default: start a local cluster.")] = None,
    storage_options: StorageOptions = None,
    source_options: Annotated[Optional[str], typer.Option(help="JSON of fsspec options for the sources (default: the same as --storage-options).")] = None,
    retries: Annotated[int, typer.Option(help="Retries of a segment that failed for a reason other than its input.")] = 2,
    worker_memory_gib: Annotated[float, typer.Option(help=(
        "Memory one worker may use, GiB: a video whose frame size needs more (estimated from its size, "
        "docs/benchmarks/scale.md) is refused with a one-line reason in its manifest row; the rest of the corpus "
        "goes on."))] = DEFAULT_WORKER_MEMORY_GIB,
) -> None:
    """Archive a corpus: split every video into GOP segments and encode them on Ray workers.
    Re-running the same command resumes: finished segments are skipped, never duplicated."""
    import threading

    from evc_archive.distributed.submit import SubmitConfig
    from evc_archive.distributed.submit import submit as run_submit

    if retries < 0:
        fail("--retries must be >= 0.")
    if worker_memory_gib <= 0:
        fail("--worker-memory-gib must be > 0.")
    if (target_bpp is not None and target_bpp <= 0) or (cap_bpp is not None and cap_bpp <= 0):
        fail("--target-bpp and --cap-bpp must be > 0.")
    if cap_bpp is not None and target_bpp is None:
        fail("--cap-bpp needs --target-bpp.")
    settings = coding_settings(lpips_threshold, quality, gop, steps, seed, predictor, keyframe_codec, residual_levels,
                               intra_only, no_inter, search)
    opts = parse_storage_options(storage_options)
    src_opts = parse_storage_options(source_options) if source_options else opts
    cfg = SubmitConfig(source, out, settings, predictor, workers,
                       gpus_per_worker, address, opts, src_opts, retries, target_bpp=target_bpp, cap_bpp=cap_bpp,
                       keyframe_codec=keyframe_codec, worker_memory_gib=worker_memory_gib)
    stop = threading.Event()
    _install_drain(stop)
    with job_progress() as progress:
        view = _SubmitView(progress)
        summary = run_submit(cfg, view, stop)
    _print_summary(summary, out, target_bpp)
    if stop.is_set():
        console.print("stopped early: re-run the same command to finish the archive")


@app.command()
def restore(
    archive: Annotated[str, typer.Argument(help="Archive location (fsspec URL or folder).")],
    out: Annotated[Path, typer.Option("--out", help="Local folder for the restored videos (one per source, the source's name).")],
    videos: Annotated[Optional[str], typer.Option(help="Only videos whose id or source file name matches this glob.")] = None,
    format: Annotated[str, typer.Option(help="'mkv' (lossless FFV1) or 'mp4' (H.264 at --crf).")] = "mkv",
    crf: Annotated[int, typer.Option(help="x264 CRF for mp4 output.")] = 18,
    workers: Annotated[Optional[int], typer.Option(help="Ray workers (default: one per GPU, else one per CPU).")] = None,
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address; default: a local cluster.")] = None,
    storage_options: StorageOptions = None,
) -> None:
    """Decode an archive back into videos with their sources' names, frame counts and frame rates."""
    from evc_archive.distributed.restore import RestoreConfig
    from evc_archive.distributed.restore import restore as run_restore

    if format not in ("mkv", "mp4"):
        fail(f"--format must be 'mkv' or 'mp4', not '{format}'.")
    cfg = RestoreConfig(archive, out, videos, workers, address, parse_storage_options(storage_options), f".{format}", crf)
    failed = 0
    with job_progress() as progress:
        task = progress.add_task("restoring", total=None, info="")

        def on_video(report):
            nonlocal failed
            if report["status"] != "ok":
                failed += 1
                progress.console.log(f"[red]failed[/] {report['video_id']}: {report.get('error')}", highlight=False)
            progress.advance(task)

        reports = run_restore(cfg, on_video)
    ok = [r for r in reports if r["status"] == "ok"]
    stdout.print(f"restored {len(ok)} videos ({sum(r['frames'] for r in ok)} frames) into {out}; {failed} failed",
                           highlight=False)
    if failed:
        raise typer.Exit(1)


@app.command("ls")
def ls_archive(
    archive: Annotated[str, typer.Argument(help="Archive location (fsspec URL or folder).")],
    storage_options: StorageOptions = None,
) -> None:
    """List an archive's videos: segments, frames, bytes, bpp, mean LPIPS, LPIPS-VGG and DISTS, failures."""
    from evc_archive.io.archive import list_archive

    rows = list_archive(archive, parse_storage_options(storage_options))
    table = Table("video", "segments ok", "failed", "frames", "bytes", "bpp", "LPIPS", "LPIPS-VGG", "DISTS", "source")
    fmt = lambda x, spec: "" if x is None else format(x, spec)  # noqa: E731
    for v in rows:
        table.add_row(v["video_id"], str(v["segments_ok"]), str(v["segments_failed"]), str(v["frames"]), str(v["bytes"]),
                      fmt(v["bpp"], ".4f"), fmt(v["lpips_mean"], ".3f"), fmt(v["lpips_vgg_mean"], ".3f"),
                      fmt(v["dists_mean"], ".3f"), v["source_uri"])
    stdout.print(table)
    for v in rows:
        for err in v["errors"][:3]:
            stdout.print(f"{v['video_id']}: {err}", highlight=False)


@app.command()
def verify(
    archive: Annotated[str, typer.Argument(help="Archive location (fsspec URL or folder).")],
    workers: Annotated[Optional[int], typer.Option(help="Ray workers.")] = None,
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address; default: a local cluster.")] = None,
    storage_options: StorageOptions = None,
) -> None:
    """Decode every segment and compare it with the fingerprints recorded at encode time; report
    drift (decodes differently here, naming the first drifting frame) and damaged or missing
    segments by name, and how many segments depend on the platform (float models). Exit 1 if any
    segment is not ok."""
    from evc_archive.distributed.restore import verify as run_verify

    with job_progress() as progress:
        task = progress.add_task("verifying", total=None, info="")

        def on_segment(result):
            if result["status"] != "ok":
                progress.console.log(f"[red]{result['status']}[/] {result['segment_id']}: {result['detail']}", highlight=False)
            progress.advance(task)

        results = run_verify(archive, parse_storage_options(storage_options), address, workers, on_segment)
    counts: dict[str, int] = {}
    for r in results:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    stdout.print(f"{len(results)} segments: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())), highlight=False)
    floats = sorted({m for r in results for m in r.get("float_models", ())})
    platform_bound = sum(bool(r.get("float_models")) for r in results)
    if platform_bound:
        stdout.print(f"{platform_bound} of them decode with float models ({', '.join(floats)}): they may decode "
                     "differently on other hardware or torch versions; the rest are integer arithmetic only",
                     highlight=False)
    if any(r["status"] != "ok" for r in results):
        raise typer.Exit(1)


def _write_output(path: Path, data: bytes) -> None:
    from evc_archive.io.files import write_atomic

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)
    except OSError as exc:
        fail(f"cannot write '{path}': {exc.strerror or exc}")


@app.command()
def report(
    archive: Annotated[str, typer.Argument(help="Archive location (fsspec URL or folder).")],
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write (self-contained: images embedded, opens offline).")] = Path("report.html"),
    max_videos: Annotated[int, typer.Option(help="Videos with a detailed section (per-frame plot, worst-segment strip), the worst first; every video is in the summary table.")] = 50,
    strip_frames: Annotated[int, typer.Option(help="Frames in each worst-segment strip (the worst frame and the first coded frames included).")] = 8,
    storage_options: StorageOptions = None,
    source_options: Annotated[Optional[str], typer.Option(help="JSON of fsspec options for the sources (default: the same as --storage-options).")] = None,
) -> None:
    """Write an HTML report of an archive: corpus summary, LPIPS/PSNR distributions, failures, per
    video the LPIPS of every frame with the coded frames marked and source | restored frames of its
    worst segment, the settings and the model cards. Reads the manifest and decodes one segment per
    shown video on this machine (no Ray); sources that are gone are reported as such."""
    from evc_archive.reports.archive_report import ReportOptions, build_report

    if max_videos < 0 or strip_frames < 1:
        fail("--max-videos must be >= 0 and --strip-frames >= 1.")
    opts = ReportOptions(archive, parse_storage_options(storage_options),
                         parse_storage_options(source_options) if source_options else None, max_videos, strip_frames)
    with job_progress() as progress:
        task = progress.add_task("report", total=None, info="")

        def on_progress(what: str, done: int, total: int) -> None:
            progress.update(task, completed=done, total=total, info=what)

        html = build_report(opts, on_progress)
    _write_output(out, html.encode("utf-8"))
    stdout.print(f"{out}: {len(html) / 1e6:.1f} MB, open it in any browser", highlight=False)
