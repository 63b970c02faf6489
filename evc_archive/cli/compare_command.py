"""`evc-archive compare`: ours beside the conventional codecs on the user's own videos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from evc_archive.cli.app import app, fail, job_progress, stdout
from evc_archive.cli.options import (DEFAULT_KEYFRAME_CODEC, DEFAULT_PREDICTOR, PRODUCT, IntraOnly, KeyframeCodec,
                                     NoInter, Predictor, ResidualLevels, Search, check_choice,
                                     check_search)
from evc_archive.cli.options import storage_options as storage_options_of
from evc_archive.core.registry import KEYFRAME_CODECS, PREDICTORS
from evc_archive.io.baselines import BASELINES

CODECS_HELP = ("Baselines, comma-separated (default: all). " + "; ".join(
    f"{s.name}: {s.about}" for s in BASELINES.values() if s.scale == 1) + "; NAME-half: each at half size (area "
    "filter; upscaled with Lanczos-3 after decoding). Cost, seconds per CRF sweep of a 128x128x30 segment on 2 CPU "
    "cores: " + ", ".join(f"{s.name} {s.sweep_s:g}" for s in BASELINES.values()) + ".")


def _targets(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        fail(f"--bpp must be comma-separated numbers, e.g. 0.02,0.03,0.05 (got '{text}')")
    if not values or any(v <= 0 or v > 24 for v in values):
        fail(f"--bpp needs one or more targets in (0, 24] bits per pixel (got '{text}')")
    return tuple(sorted(set(values)))


@app.command()
def compare(
    source: Annotated[str, typer.Argument(help="A video, a folder of videos, a glob or an fsspec URL (what submit accepts).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for compare.csv, compare.md and per video <name>.rd.png, <name>.rd_psnr.png, <name>.grid.png.")] = Path("compare-out"),
    bpp: Annotated[str, typer.Option("--bpp", help="Target bits per pixel, comma-separated: ours is rate-controlled to each, the baselines interpolated at each.")] = "0.02,0.03,0.05",
    gop: Annotated[int, typer.Option(help="Frames per segment: ours codes segments as the archive does; baselines code each segment as one closed GOP.")] = PRODUCT.gop,
    frames: Annotated[Optional[int], typer.Option(help="Only the first N frames of each video (default: all).")] = None,
    size: Annotated[Optional[int], typer.Option(help="Resize the short side to N and centre-crop to NxN first (the benchmarks' protocol; default: full size).")] = None,
    predictor: Predictor = DEFAULT_PREDICTOR,
    keyframe_codec: KeyframeCodec = DEFAULT_KEYFRAME_CODEC,
    residual_levels: ResidualLevels = PRODUCT.residual_levels,
    intra_only: IntraOnly = False,
    no_inter: NoInter = False,
    search: Search = PRODUCT.search,
    codecs: Annotated[str, typer.Option(help=CODECS_HELP)] = ",".join(BASELINES),
    fps: Annotated[Optional[str], typer.Option(help="Code at this frame rate (e.g. 25 or 30000/1001) instead of each source's: x264 and x265 spend bits by frame rate.")] = None,
    storage_options: Annotated[Optional[str], typer.Option(help="JSON of fsspec options for the sources.")] = None,
) -> None:
    """Compare ours with x264, x265 and SVT-AV1 at matched bpp on your own videos, before trusting us
    with a corpus. Baselines run at their slowest practical presets and at our inter GOP fallback's
    SVT-AV1 setting, at full and half size, swept to each codec's floor, one closed GOP per segment,
    raw packet bytes counted (less the SEI settings text x264/x265 add); ours counts every byte of
    its segment objects. Writes a CSV of
    bpp/LPIPS/PSNR per codec and setting, RD plots and a frame grid per video."""
    from evc_archive.reports.compare import CompareOptions, run_compare

    targets = _targets(bpp)
    if gop < 1 or (frames is not None and frames < 1) or (size is not None and size < 16):
        fail("--gop and --frames must be >= 1, --size >= 16.")
    if residual_levels < 0:
        fail("--residual-levels must be >= 0.")
    check_choice("--predictor", predictor, PREDICTORS)
    check_choice("--keyframe-codec", keyframe_codec, KEYFRAME_CODECS)
    check_search(search)
    names = tuple(c.strip() for c in codecs.split(",") if c.strip())
    rate = None
    if fps is not None:
        from fractions import Fraction

        try:
            rate = Fraction(fps)
        except (ValueError, ZeroDivisionError):
            fail(f"--fps must be a positive number or fraction, e.g. 25 or 30000/1001 (got '{fps}')")
        if rate <= 0:
            fail(f"--fps must be positive (got '{fps}')")
    opts = CompareOptions(source, out, targets, gop, frames, size, predictor, names, storage_options_of(storage_options),
                          rate, keyframe_codec=keyframe_codec, residual_levels=None if intra_only else residual_levels,
                          inter_fallback=not no_inter, search=search)
    with job_progress() as progress:
        task = progress.add_task("compare", total=None, info="")
        results = run_compare(opts, lambda message: progress.update(task, info=message))
    table = Table("video", "target bpp", *("ours", *names),
                  title="mean LPIPS / LPIPS-VGG / DISTS at matched bpp (lower is better; only LPIPS is optimised)")
    for v in results:
        for t in targets:
            cells = []
            for c in ("ours", *names):
                p = next(p for p in v.points if p.codec == c and p.kind == "target" and p.target_bpp == t)
                vgg = "" if p.lpips_vgg is None else f" / {p.lpips_vgg:.3f} / {p.dists:.3f}"
                at = f" @{p.bpp:.4f}" if c == "ours" else ""
                cells.append("n/a" if p.lpips is None else f"{p.lpips:.3f}{vgg}{at}")
            table.add_row(v.name, f"{t:g}", *cells)
    stdout.print(table)
    stdout.print(f"wrote {out}/compare.csv, compare.md and plots", highlight=False)
