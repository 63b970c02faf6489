"""Commands on one video and its .evc stream: encode, decode, inspect, demo."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from evc_archive.cli.app import app, fail, new_progress, stdout
from evc_archive.cli.options import (DEFAULT_KEYFRAME_CODEC, DEFAULT_PREDICTOR, PRODUCT, Gop, IntraOnly,
                                     KeyframeCodec, Predictor, Quality, ResidualLevels, Search, Seed, Steps, Threshold,
                                     coding_settings)


def _library(models: Optional[Path]):
    from evc_archive.core.model_library import ModelLibrary

    return ModelLibrary(extra_dirs=(models,) if models else ())


@app.command()
def encode(
    source: Annotated[Path, typer.Argument(help="Input video (any format FFmpeg reads: mp4, mkv, webm, mov, avi, y4m, ...).")],
    output: Annotated[Path, typer.Argument(help="Output stream file (.evc).")],
    lpips_threshold: Threshold = PRODUCT.lpips_threshold,
    quality: Quality = None,
    gop: Gop = PRODUCT.gop,
    steps: Steps = PRODUCT.sampling_steps,
    seed: Seed = PRODUCT.seed,
    predictor: Predictor = DEFAULT_PREDICTOR,
    keyframe_codec: KeyframeCodec = DEFAULT_KEYFRAME_CODEC,
    residual_levels: ResidualLevels = PRODUCT.residual_levels,
    intra_only: IntraOnly = False,
    search: Search = PRODUCT.search,
) -> None:
    """Encode a video into one .evc stream of consecutive GOP-sized segments."""
    from evc_archive.io.files import encode_file
    from evc_archive.io.video_probe import probe_video

    settings = coding_settings(lpips_threshold, quality, gop, steps, seed, predictor, keyframe_codec, residual_levels,
                               intra_only, search=search)
    if not source.is_file():
        fail(f"'{source}' does not exist or is not a file.")
    info = probe_video(source)  # exact: every frame decoded once, so count and rate are what we encode
    started = time.perf_counter()
    with new_progress() as progress:
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
                 f"LPIPS {summary.mean_lpips:.4f}, PSNR {summary.mean_psnr:.2f} dB, "
                 f"{enc.frame_count / seconds:.1f} frames/s", highlight=False)


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
    with new_progress() as progress:
        task = progress.add_task(f"decoding {source.name}", total=None, info="")

        def on_segment(done, total):
            progress.update(task, completed=done, total=total)

        stream = decode_file(source, output, _library(models), crf, on_segment)
    seconds = time.perf_counter() - started
    h = stream.header
    stdout.print(f"{output}: {stream.frame_count} frames {h.width}x{h.height} @ {float(h.fps):.3f} fps, "
                 f"{stream.frame_count / seconds:.1f} frames/s", highlight=False)


def _kind_label(registry, kind_id: int) -> str:
    """A stream's kind id with its registry label ('?' for an id this build does not know)."""
    known = {s.kind_id: s.label for s in registry.specs()}
    return f"{kind_id} {known.get(kind_id, '?')}"


def _platform_note(header, loop_segments: bool) -> str:
    """'yes ...' when the decode is integer arithmetic only, else which float models it depends on."""
    from evc_archive.core.errors import ModelMismatchError
    from evc_archive.core.registry import float_models_of

    try:
        floats = float_models_of(header.keyframe_model_id, header.predictor_model_id, loop_segments)
    except ModelMismatchError:
        return "unknown (the stream names a model kind this build does not know)"
    if floats:
        return f"no: depends on the platform (float models: {', '.join(floats)})"
    return "yes: integer arithmetic only, the same frames on any hardware"


@app.command()
def inspect(source: Annotated[Path, typer.Argument(help="Stream file (.evc).")]) -> None:
    """Show a stream's header, whether its decode is bit-exact on any hardware, per-segment flags,
    sizes and bpp (no models needed)."""
    from evc_archive.core.registry import KEYFRAME_CODECS, PREDICTORS
    from evc_archive.io.files import read_stream_file

    data, stream = read_stream_file(source)
    h = stream.header
    platform = _platform_note(h, any(seg.inter is None for seg in stream.segments))
    bpp = len(data) * 8 / (stream.frame_count * h.width * h.height)
    table = Table(title=f"{source.name}: {len(data)} bytes, {stream.frame_count} frames, {bpp:.4f} bpp", show_header=False)
    for key, value in [
        ("size", f"{h.width}x{h.height}"), ("fps", f"{h.fps} ({float(h.fps):.3f})"),
        ("keyframe model", f"{_kind_label(KEYFRAME_CODECS, h.keyframe_model_id)} {h.keyframe_hash.hex()}"),
        ("predictor", f"{_kind_label(PREDICTORS, h.predictor_model_id)} {h.predictor_hash.hex()}"),
        ("K / F / steps", f"{h.context_frames} / {h.frames_per_call} / {h.sampling_steps}"),
        ("seed", str(h.seed)), ("LPIPS threshold", f"{h.lpips_threshold:.4f}"), ("first frame", str(h.first_frame)),
        ("format version", str(data[4])), ("bit-exact decode", platform),
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
    encode(sample, out_dir / "sample.evc", lpips_threshold=PRODUCT.lpips_threshold, quality=None, gop=PRODUCT.gop,
           steps=PRODUCT.sampling_steps, seed=PRODUCT.seed, predictor=DEFAULT_PREDICTOR,
           keyframe_codec=DEFAULT_KEYFRAME_CODEC, residual_levels=PRODUCT.residual_levels, intra_only=False)
    inspect(out_dir / "sample.evc")
    decode(out_dir / "sample.evc", out_dir / "sample.decoded.mkv", crf=18, models=None)
