"""The `evc-archive` command line. The only module that prints; user errors exit 1 with one line."""

from __future__ import annotations

import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from evc_archive.core.errors import EVCError

warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")  # compressai's torch.jit.script

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Archive video at extreme compression (0.01-0.1 bpp) with generative prediction.",
)
console = Console(stderr=True, log_path=False)
stdout = Console()

# Defaults: the combination that won the ablation (docs/benchmarks/ablation.md, 6 held-out clips,
# 128x128x30, rate control per clip, mean LPIPS at 0.02 / 0.03 / 0.05 / 0.07 bpp):
#   SVT-AV1 intra keyframes + restore-hint + residual frames + inter GOP fallback
#                                           0.140 / 0.106 / 0.070 / 0.051
#   the same without the inter fallback     0.140 / 0.107 / 0.083 / 0.069
#   ... with restore-hint-bilinear (kind 5) 0.139 / 0.111 / 0.088 / 0.073
#   ... with motion-hint instead            0.164 / 0.125 / 0.093 / 0.074
#   ... with copy-last instead              0.176 / 0.134 / 0.100 / 0.079
#   hyperprior + copy-last (first default)  0.245 / 0.235 / 0.195 / 0.191
#   best-of x264/x265/SVT-AV1               0.289 / 0.167 / 0.090 / 0.059
# restore-hint is motion-hint over the shipped learned restoration of the last decoded frame
# (evc_archive/models/restore.md), moved with a Lanczos-3 filter, restored / as decoded / halfway
# per call. It costs search time (~2.7x motion-hint's) and decode speed (hundreds instead of
# thousands of frames/s at 128x128) and writes bitstream version 2 or later. The motion-extrapolation
# and diffusion predictors lose to copy-last in the loop. Fixed settings (no --target-bpp): level 15
# (CRF 35), threshold 0.3.
# Everything else stays selectable; --quality defaults per codec (DEFAULT_QUALITY).
PREDICTOR_CHOICES = ("copy-last", "motion", "motion-hint", "block-hint", "diffusion", "restore-hint",
                     "restore-hint-bilinear")  # registry.PREDICTOR_NAMES (not imported: fast CLI start)
KEYFRAME_CHOICES = ("hyperprior", "svtav1")  # registry.KEYFRAME_NAMES
DEFAULT_QUALITY = {"svtav1": 15, "hyperprior": 4}  # when --quality is not given
DEFAULTS = {"lpips_threshold": 0.3, "quality": DEFAULT_QUALITY["svtav1"], "gop": 30, "steps": 1, "predictor": "restore-hint",
            "keyframe_codec": "svtav1", "residual_levels": 4}  # core.loop.DEFAULT_RESIDUAL_LEVELS (a test checks)
QUALITY_HELP = "Keyframe codec quality level (1 = fewest bits; svtav1 1-25, default 15; hyperprior 1-5, default 4)."
INTRA_ONLY_HELP = "Code every rejected frame on its own, never as a residual (the paper's loop)."
RESIDUAL_HELP = ("A rejected frame may be coded as its residual against the predicted frame, this many quality "
                 "levels above the segment's first frame, where that is cheaper or alone meets the threshold "
                 "(bitstream v3). Rate control (--target-bpp, compare) instead tries, per segment, intra only "
                 "and 0, 1, 2 and 3 levels (core.loop.RESIDUAL_SEARCH).")
INTER_HELP = ("With --target-bpp: never code a segment as one AV1 inter GOP (bitstream v4). By default rate control "
              "also measures that conventional coding per segment and uses it where it gives the lower LPIPS in the "
              "budget (static cameras from about 0.05 bpp up); with this flag every segment is the generative loop.")


def loop_settings(lpips_threshold: float, quality: int | None, gop: int, steps: int, seed: int, keyframe_codec: str,
                  residual_levels: int | None, inter_fallback: bool = False):
    """Validated options -> core.encoder.EncoderSettings (quality None: the codec's default level).
    The one place encode, submit and the Ray job (jobs/compress.py) build the loop's settings."""
    from evc_archive.core.encoder import EncoderSettings

    return EncoderSettings(lpips_threshold, DEFAULT_QUALITY[keyframe_codec] if quality is None else quality, gop, steps,
                           seed, residual_levels, inter_fallback=inter_fallback)


def _residual(levels: int, intra_only: bool) -> int | None:
    """--residual-levels / --intra-only -> EncoderSettings.residual_levels."""
    if levels < 0:
        _fail("--residual-levels must be >= 0.")
    return None if intra_only else levels


def _check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        _fail(f"{option} must be one of {', '.join(repr(c) for c in choices)}, not '{value}'.")


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False)


@contextmanager
def _job_progress():
    """A progress display that leaves nothing behind when the job fails with a user error, so the
    error is the one line the user sees (not a half-drawn bar, then the error)."""
    progress = _progress()
    with progress:
        try:
            yield progress
        except EVCError:
            progress.live.transient = True
            progress.live.stop()
            progress.disable = True  # Progress.stop would still print an empty line on non-terminals
            raise


def _library(models: Optional[Path]):
    from evc_archive.core.registry import ModelLibrary

    return ModelLibrary(extra_dirs=(models,) if models else ())


@app.command()
def encode(
    source: Annotated[Path, typer.Argument(help="Input video (any format FFmpeg reads: mp4, mkv, webm, mov, avi, y4m, ...).")],
    output: Annotated[Path, typer.Argument(help="Output stream file (.evc).")],
    lpips_threshold: Annotated[float, typer.Option(help="Accept a generated frame while its LPIPS to the source is at most this; lower = more coded frames, more bits, better quality.")] = DEFAULTS["lpips_threshold"],
    quality: Annotated[Optional[int], typer.Option(help=QUALITY_HELP)] = None,
    gop: Annotated[int, typer.Option(help="Frames per segment; each segment decodes on its own and starts with a coded frame.")] = DEFAULTS["gop"],
    steps: Annotated[int, typer.Option(help="DDIM sampling steps of the diffusion predictor (recorded in the stream).")] = DEFAULTS["steps"],
    seed: Annotated[int, typer.Option(help="Seed of the predictor's starting noise (recorded in the stream).")] = 0,
    predictor: Annotated[str, typer.Option(help="Frame predictor: 'copy-last' (repeats the last decoded frame), 'motion' (extrapolates block motion of the last two decoded frames), 'motion-hint' (copy-last moved by a global velocity the encoder picks and stores, 0-4 bytes per call; bitstream v2), 'block-hint' (the same with a coarse block motion field where it pays for its bytes), 'diffusion' (the shipped conditional diffusion model) or 'restore-hint' (motion-hint over the shipped learned restoration of the last decoded frame, moved with a sharp Lanczos-3 filter; 'restore-hint-bilinear' is its first version, moved bilinearly).")] = DEFAULTS["predictor"],
    keyframe_codec: Annotated[str, typer.Option(help="Codec of the coded frames: 'hyperprior' (the shipped learned codec, qualities 1-5) or 'svtav1' (AV1 intra frames through SVT-AV1/dav1d, qualities 1-25).")] = DEFAULTS["keyframe_codec"],
    residual_levels: Annotated[int, typer.Option(help=RESIDUAL_HELP)] = DEFAULTS["residual_levels"],
    intra_only: Annotated[bool, typer.Option("--intra-only", help=INTRA_ONLY_HELP)] = False,
) -> None:
    """Encode a video into one .evc stream of consecutive GOP-sized segments."""
    from evc_archive.io.files import encode_file
    from evc_archive.io.video_probe import probe_video

    if gop < 1 or steps < 1 or lpips_threshold < 0 or seed < 0:
        _fail("--gop and --steps must be >= 1, --lpips-threshold and --seed >= 0.")
    _check_choice("--predictor", predictor, PREDICTOR_CHOICES)
    _check_choice("--keyframe-codec", keyframe_codec, KEYFRAME_CHOICES)
    if not source.is_file():
        _fail(f"'{source}' does not exist or is not a file.")
    info = probe_video(source)  # exact: every frame decoded once, so count and rate are what we encode
    settings = loop_settings(lpips_threshold, quality, gop, steps, seed, keyframe_codec,
                             _residual(residual_levels, intra_only))
    started = time.perf_counter()
    with _progress() as progress:
        task = progress.add_task(f"encoding {source.name}", total=info.frame_count, info="")
        coded = 0

        def on_segment(result, done):
            nonlocal coded
            coded += sum(result.segment.coded)
            progress.update(task, completed=done, info=f"coded {coded}/{done}")

        summary = encode_file(source, output, settings, _library(None), predictor, on_segment, info, keyframe_codec)
    seconds = time.perf_counter() - started
    enc = summary.encoded
    stdout.print(f"{output}: {enc.frame_count} frames {info.width}x{info.height} @ {float(info.fps):.3f} fps, "
              f"{len(enc.data)} bytes, {enc.bpp:.4f} bpp, coded {summary.coded_frames} frames, "
              f"LPIPS {summary.mean_lpips:.4f}, PSNR {summary.mean_psnr:.2f} dB, {enc.frame_count / seconds:.1f} frames/s",
              highlight=False)


@app.command()
def decode(
    source: Annotated[Path, typer.Argument(help="Input stream (.evc).")],
    output: Annotated[Path, typer.Argument(help="Output video: .mkv = lossless FFV1, .mp4 = H.264 (x264) at --crf.")],
    crf: Annotated[int, typer.Option(help="x264 constant rate factor for .mp4 output (0-51, lower = better).")] = 18,
    models: Annotated[Optional[Path], typer.Option(help="Extra folder of model files (e.g. an archive's models/).")] = None,
) -> None:
    """Decode an .evc stream back to a video with the source's size, frame count and frame rate."""
    from evc_archive.io.files import decode_file

    started = time.perf_counter()
    with _progress() as progress:
        task = progress.add_task(f"decoding {source.name}", total=None, info="")

        def on_segment(done, total):
            progress.update(task, completed=done, total=total)

        stream = decode_file(source, output, _library(models), crf, on_segment)
    seconds = time.perf_counter() - started
    h = stream.header
    stdout.print(f"{output}: {stream.frame_count} frames {h.width}x{h.height} @ {float(h.fps):.3f} fps, "
              f"{stream.frame_count / seconds:.1f} frames/s", highlight=False)


@app.command()
def inspect(source: Annotated[Path, typer.Argument(help="Stream file (.evc).")]) -> None:
    """Show a stream's header, per-segment flags, sizes and bpp (no models needed)."""
    from evc_archive.core.registry import KEYFRAME_KINDS, PREDICTOR_KINDS
    from evc_archive.io.files import read_stream_file

    data, stream = read_stream_file(source)
    h = stream.header
    bpp = len(data) * 8 / (stream.frame_count * h.width * h.height)
    table = Table(title=f"{source.name}: {len(data)} bytes, {stream.frame_count} frames, {bpp:.4f} bpp", show_header=False)
    for key, value in [
        ("size", f"{h.width}x{h.height}"), ("fps", f"{h.fps} ({float(h.fps):.3f})"),
        ("keyframe model", f"{h.keyframe_model_id} {KEYFRAME_KINDS.get(h.keyframe_model_id, '?')} {h.keyframe_hash.hex()}"),
        ("predictor", f"{h.predictor_model_id} {PREDICTOR_KINDS.get(h.predictor_model_id, '?')} {h.predictor_hash.hex()}"),
        ("K / F / steps", f"{h.context_frames} / {h.frames_per_call} / {h.sampling_steps}"),
        ("seed", str(h.seed)), ("LPIPS threshold", f"{h.lpips_threshold:.4f}"), ("first frame", str(h.first_frame)),
    ]:
        table.add_row(key, value)
    stdout.print(table)
    seg_table = Table("segment", "frames", "coded", "bytes", "qualities (r = residual)")
    seg_table.add_column("flags (C = coded, R = coded as a residual, . = generated; inter: one AV1 GOP)", overflow="fold")
    for i, seg in enumerate(stream.segments):
        if seg.inter is not None:
            seg_table.add_row(str(i), str(seg.frame_count), str(seg.frame_count), str(len(seg.inter.payload)),
                              f"inter {seg.inter.quality}", "inter (every frame in one AV1 GOP)")
            continue
        marks = iter("R" if f.mode else "C" for f in seg.frames)
        seg_table.add_row(str(i), str(seg.frame_count), str(sum(seg.coded)), str(sum(len(f.payload) for f in seg.frames)),
                          ",".join(f"{f.quality}{'r' if f.mode else ''}" for f in seg.frames),
                          "".join(next(marks) if c else "." for c in seg.coded))
    stdout.print(seg_table)


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the sample video, its stream and the decoded video.")] = Path("demo-out"),
) -> None:
    """Generate the embedded sample video, encode it with the default models, decode it, report."""
    from evc_archive.io.sample import write_sample_video

    out_dir.mkdir(parents=True, exist_ok=True)
    sample = write_sample_video(out_dir / "sample.mkv")
    stdout.print(f"sample video: {sample} (generated, 60 frames 128x128 @ 25 fps)", highlight=False)
    encode(sample, out_dir / "sample.evc", **DEFAULTS, seed=0)
    inspect(out_dir / "sample.evc")
    decode(out_dir / "sample.evc", out_dir / "sample.decoded.mkv", crf=18, models=None)


def _storage_options(text: Optional[str]) -> dict:
    import json

    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(f"--storage-options is not valid JSON ({exc.msg})")
    if not isinstance(value, dict):
        _fail("--storage-options must be a JSON object, e.g. '{\"anon\": true}'")
    return value


class _SubmitView:
    """Rich progress for a submit job: segments done/total, bpp so far, failures, ETA."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.task = progress.add_task("archiving", total=None, info="")
        self.bytes = self.pixels = self.failed = self.done = 0

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


@app.command()
def submit(
    source: Annotated[str, typer.Argument(help="Corpus: a folder, a glob ('videos/*.mp4'), an fsspec URL prefix (s3://bucket/videos/) or an input manifest (.parquet/.csv with a 'uri' column).")],
    out: Annotated[str, typer.Option("--out", help="Archive location: any fsspec URL or local folder.")],
    lpips_threshold: Annotated[float, typer.Option(help="Accept a generated frame while its LPIPS to the source is at most this.")] = DEFAULTS["lpips_threshold"],
    quality: Annotated[Optional[int], typer.Option(help=QUALITY_HELP)] = None,
    gop: Annotated[int, typer.Option(help="Frames per segment (one segment = one object, one unit of work).")] = DEFAULTS["gop"],
    target_bpp: Annotated[Optional[float], typer.Option(help="Corpus-level target bpp: rate control picks quality and threshold per segment for the best LPIPS within the budget (overrides --quality and --lpips-threshold).")] = None,
    cap_bpp: Annotated[Optional[float], typer.Option(help="Hard cap on every segment's bpp (with --target-bpp).")] = None,
    steps: Annotated[int, typer.Option(help="DDIM sampling steps of the diffusion predictor.")] = DEFAULTS["steps"],
    seed: Annotated[int, typer.Option(help="Job seed; each segment's seed derives from it and the segment id.")] = 0,
    predictor: Annotated[str, typer.Option(help="'copy-last', 'motion', 'motion-hint', 'block-hint', 'diffusion', 'restore-hint' or 'restore-hint-bilinear' (see `encode --help`).")] = DEFAULTS["predictor"],
    keyframe_codec: Annotated[str, typer.Option(help="'hyperprior' (shipped learned codec) or 'svtav1' (AV1 intra).")] = DEFAULTS["keyframe_codec"],
    residual_levels: Annotated[int, typer.Option(help=RESIDUAL_HELP)] = DEFAULTS["residual_levels"],
    intra_only: Annotated[bool, typer.Option("--intra-only", help=INTRA_ONLY_HELP)] = False,
    no_inter: Annotated[bool, typer.Option("--no-inter", help=INTER_HELP)] = False,
    workers: Annotated[Optional[int], typer.Option(help="Ray workers (default: one per GPU, else one per CPU).")] = None,
    gpus_per_worker: Annotated[float, typer.Option(help="GPUs per worker where the cluster has GPUs.")] = 1.0,
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address (e.g. 'auto' or 'ray://head:10001'); default: start a local cluster.")] = None,
    storage_options: Annotated[Optional[str], typer.Option(help="JSON of fsspec options for the archive (credentials, endpoint_url, ...).")] = None,
    source_options: Annotated[Optional[str], typer.Option(help="JSON of fsspec options for the sources (default: the same as --storage-options).")] = None,
    retries: Annotated[int, typer.Option(help="Retries of a segment that failed for a reason other than its input.")] = 2,
) -> None:
    """Archive a corpus: split every video into GOP segments and encode them on Ray workers.
    Re-running the same command resumes: finished segments are skipped, never duplicated."""
    import threading

    from evc_archive.distributed.submit import SubmitConfig
    from evc_archive.distributed.submit import submit as run_submit

    if gop < 1 or steps < 1 or lpips_threshold < 0 or seed < 0 or retries < 0:
        _fail("--gop and --steps must be >= 1; --lpips-threshold, --seed and --retries >= 0.")
    if (target_bpp is not None and target_bpp <= 0) or (cap_bpp is not None and cap_bpp <= 0):
        _fail("--target-bpp and --cap-bpp must be > 0.")
    if cap_bpp is not None and target_bpp is None:
        _fail("--cap-bpp needs --target-bpp.")
    _check_choice("--predictor", predictor, PREDICTOR_CHOICES)
    _check_choice("--keyframe-codec", keyframe_codec, KEYFRAME_CHOICES)
    opts = _storage_options(storage_options)
    src_opts = _storage_options(source_options) if source_options else opts
    settings = loop_settings(lpips_threshold, quality, gop, steps, seed, keyframe_codec,
                             _residual(residual_levels, intra_only), inter_fallback=not no_inter)
    cfg = SubmitConfig(source, out, settings, predictor, workers,
                       gpus_per_worker, address, opts, src_opts, retries, target_bpp=target_bpp, cap_bpp=cap_bpp,
                       keyframe_codec=keyframe_codec)
    stop = threading.Event()
    _install_drain(stop)
    with _job_progress() as progress:
        view = _SubmitView(progress)
        summary = run_submit(cfg, view, stop)
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
    storage_options: Annotated[Optional[str], typer.Option(help="JSON of fsspec options for the archive.")] = None,
) -> None:
    """Decode an archive back into videos with their sources' names, frame counts and frame rates."""
    from evc_archive.distributed.restore import RestoreConfig
    from evc_archive.distributed.restore import restore as run_restore

    if format not in ("mkv", "mp4"):
        _fail(f"--format must be 'mkv' or 'mp4', not '{format}'.")
    cfg = RestoreConfig(archive, out, videos, workers, address, _storage_options(storage_options), f".{format}", crf)
    failed = 0
    with _job_progress() as progress:
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
    storage_options: Annotated[Optional[str], typer.Option(help="JSON of fsspec options for the archive.")] = None,
) -> None:
    """List an archive's videos: segments, frames, bytes, bpp, mean LPIPS, failures."""
    from evc_archive.io.archive import list_archive

    rows = list_archive(archive, _storage_options(storage_options))
    table = Table("video", "segments ok", "failed", "frames", "bytes", "bpp", "LPIPS", "source")
    for v in rows:
        table.add_row(v["video_id"], str(v["segments_ok"]), str(v["segments_failed"]), str(v["frames"]), str(v["bytes"]),
                      "" if v["bpp"] is None else f"{v['bpp']:.4f}", "" if v["lpips_mean"] is None else f"{v['lpips_mean']:.3f}",
                      v["source_uri"])
    stdout.print(table)
    for v in rows:
        for err in v["errors"][:3]:
            stdout.print(f"{v['video_id']}: {err}", highlight=False)


@app.command()
def verify(
    archive: Annotated[str, typer.Argument(help="Archive location (fsspec URL or folder).")],
    workers: Annotated[Optional[int], typer.Option(help="Ray workers.")] = None,
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address; default: a local cluster.")] = None,
    storage_options: Annotated[Optional[str], typer.Option(help="JSON of fsspec options for the archive.")] = None,
) -> None:
    """Decode every segment and compare it with the fingerprint recorded at encode time; report
    drift (decodes differently here) and damaged or missing segments by name. Exit 1 if any."""
    from evc_archive.distributed.restore import verify as run_verify

    with _job_progress() as progress:
        task = progress.add_task("verifying", total=None, info="")

        def on_segment(result):
            if result["status"] != "ok":
                progress.console.log(f"[red]{result['status']}[/] {result['segment_id']}: {result['detail']}", highlight=False)
            progress.advance(task)

        results = run_verify(archive, _storage_options(storage_options), address, workers, on_segment)
    counts: dict[str, int] = {}
    for r in results:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    stdout.print(f"{len(results)} segments: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())), highlight=False)
    if any(r["status"] != "ok" for r in results):
        raise typer.Exit(1)


def _write_output(path: Path, data: bytes) -> None:
    from evc_archive.io.files import write_atomic

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)
    except OSError as exc:
        _fail(f"cannot write '{path}': {exc.strerror or exc}")


@app.command()
def report(
    archive: Annotated[str, typer.Argument(help="Archive location (fsspec URL or folder).")],
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write (self-contained: images embedded, opens offline).")] = Path("report.html"),
    max_videos: Annotated[int, typer.Option(help="Videos with a detailed section (per-frame plot, worst-segment strip), the worst first; every video is in the summary table.")] = 50,
    strip_frames: Annotated[int, typer.Option(help="Frames in each worst-segment strip (the worst frame and the first coded frames included).")] = 8,
    storage_options: Annotated[Optional[str], typer.Option(help="JSON of fsspec options for the archive.")] = None,
    source_options: Annotated[Optional[str], typer.Option(help="JSON of fsspec options for the sources (default: the same as --storage-options).")] = None,
) -> None:
    """Write an HTML report of an archive: corpus summary, LPIPS/PSNR distributions, failures, per
    video the LPIPS of every frame with the coded frames marked and source | restored frames of its
    worst segment, the settings and the model cards. Reads the manifest and decodes one segment per
    shown video on this machine (no Ray); sources that are gone are reported as such."""
    from evc_archive.reports.archive_report import ReportOptions, build_report

    if max_videos < 0 or strip_frames < 1:
        _fail("--max-videos must be >= 0 and --strip-frames >= 1.")
    opts = ReportOptions(archive, _storage_options(storage_options),
                         _storage_options(source_options) if source_options else None, max_videos, strip_frames)
    with _job_progress() as progress:
        task = progress.add_task("report", total=None, info="")

        def on_progress(what: str, done: int, total: int) -> None:
            progress.update(task, completed=done, total=total, info=what)

        html = build_report(opts, on_progress)
    _write_output(out, html.encode("utf-8"))
    stdout.print(f"{out}: {len(html) / 1e6:.1f} MB, open it in any browser", highlight=False)


def _targets(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        _fail(f"--bpp must be comma-separated numbers, e.g. 0.02,0.03,0.05 (got '{text}')")
    if not values or any(v <= 0 or v > 24 for v in values):
        _fail(f"--bpp needs one or more targets in (0, 24] bits per pixel (got '{text}')")
    return tuple(sorted(set(values)))


@app.command()
def compare(
    source: Annotated[str, typer.Argument(help="A video, a folder of videos, a glob or an fsspec URL (what submit accepts).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for compare.csv, compare.md and per video <name>.rd.png, <name>.rd_psnr.png, <name>.grid.png.")] = Path("compare-out"),
    bpp: Annotated[str, typer.Option("--bpp", help="Target bits per pixel, comma-separated: ours is rate-controlled to each, the baselines interpolated at each.")] = "0.02,0.03,0.05",
    gop: Annotated[int, typer.Option(help="Frames per segment: ours codes segments as the archive does; baselines code each segment as one closed GOP.")] = DEFAULTS["gop"],
    frames: Annotated[Optional[int], typer.Option(help="Only the first N frames of each video (default: all).")] = None,
    size: Annotated[Optional[int], typer.Option(help="Resize the short side to N and centre-crop to NxN first (the benchmarks' protocol; default: full size).")] = None,
    predictor: Annotated[str, typer.Option(help=f"Our predictor: {', '.join(PREDICTOR_CHOICES)}.")] = DEFAULTS["predictor"],
    keyframe_codec: Annotated[str, typer.Option(help=f"Our keyframe codec: {', '.join(KEYFRAME_CHOICES)}.")] = DEFAULTS["keyframe_codec"],
    residual_levels: Annotated[int, typer.Option(help=RESIDUAL_HELP)] = DEFAULTS["residual_levels"],
    intra_only: Annotated[bool, typer.Option("--intra-only", help=INTRA_ONLY_HELP)] = False,
    no_inter: Annotated[bool, typer.Option("--no-inter", help=INTER_HELP)] = False,
    codecs: Annotated[str, typer.Option(help="Baselines, comma-separated, from x264 (veryslow), x265 (veryslow), svtav1 (preset 4).")] = "x264,x265,svtav1",
    fps: Annotated[Optional[str], typer.Option(help="Code at this frame rate (e.g. 25 or 30000/1001) instead of each source's: x264 and x265 spend bits by frame rate.")] = None,
    storage_options: Annotated[Optional[str], typer.Option(help="JSON of fsspec options for the source.")] = None,
) -> None:
    """Compare ours with x264, x265 and SVT-AV1 at matched bpp on your own videos, before trusting us
    with a corpus. Baselines run at their slowest practical presets, one closed GOP per segment,
    raw packet bytes counted (less the SEI settings text x264/x265 add); ours counts every byte of
    its segment objects. Writes a CSV of
    bpp/LPIPS/PSNR per codec and setting, RD plots and a frame grid per video."""
    from evc_archive.reports.compare import CompareOptions, run_compare

    targets = _targets(bpp)
    if gop < 1 or (frames is not None and frames < 1) or (size is not None and size < 16):
        _fail("--gop and --frames must be >= 1, --size >= 16.")
    if predictor not in PREDICTOR_CHOICES:
        _fail(f"--predictor must be one of {', '.join(PREDICTOR_CHOICES)}, not '{predictor}'.")
    if keyframe_codec not in KEYFRAME_CHOICES:
        _fail(f"--keyframe-codec must be one of {', '.join(KEYFRAME_CHOICES)}, not '{keyframe_codec}'.")
    names = tuple(c.strip() for c in codecs.split(",") if c.strip())
    rate = None
    if fps is not None:
        from fractions import Fraction

        try:
            rate = Fraction(fps)
        except (ValueError, ZeroDivisionError):
            _fail(f"--fps must be a positive number or fraction, e.g. 25 or 30000/1001 (got '{fps}')")
        if rate <= 0:
            _fail(f"--fps must be positive (got '{fps}')")
    opts = CompareOptions(source, out, targets, gop, frames, size, predictor, names, _storage_options(storage_options),
                          rate, keyframe_codec=keyframe_codec, residual_levels=_residual(residual_levels, intra_only),
                          inter_fallback=not no_inter)
    with _job_progress() as progress:
        task = progress.add_task("compare", total=None, info="")
        results = run_compare(opts, lambda message: progress.update(task, info=message))
    table = Table("video", "target bpp", *("ours", *names), title="mean LPIPS at matched bpp (lower is better)")
    for v in results:
        for t in targets:
            cells = []
            for c in ("ours", *names):
                p = next(p for p in v.points if p.codec == c and p.kind == "target" and p.target_bpp == t)
                cells.append("n/a" if p.lpips is None else f"{p.lpips:.3f}" + (f" @{p.bpp:.4f}" if c == "ours" else ""))
            table.add_row(v.name, f"{t:g}", *cells)
    stdout.print(table)
    stdout.print(f"wrote {out}/compare.csv, compare.md and plots", highlight=False)


def main() -> None:
    """Console entry point: EVCError -> one line on stderr, exit 1; Ctrl-C -> exit 130."""
    try:
        result = app(standalone_mode=False)  # click returns typer.Exit codes here instead of raising
        sys.exit(result if isinstance(result, int) else 0)
    except EVCError as exc:
        from rich.markup import escape

        # one line, never wrapped; file names and URLs in the message are text, not markup
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - click usage errors, then anything unexpected
        import os

        if callable(getattr(exc, "show", None)) and hasattr(exc, "exit_code"):  # click's (typer's vendored) usage errors
            exc.show()
            sys.exit(exc.exit_code)
        if os.environ.get("EVC_DEBUG"):
            raise
        console.print(f"[bold red]internal error:[/] {exc.__class__.__name__}: {exc} (set EVC_DEBUG=1 for a traceback)",
                      highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
