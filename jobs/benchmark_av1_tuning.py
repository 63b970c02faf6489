"""SVT-AV1 encoder settings for our two AV1 uses, measured: the intra keyframe codec
(core.keyframes.av1_intra) and the inter GOP segments (core.gop_av1). Writes docs/benchmarks/av1_tuning.{md,json}.

    python -m jobs.benchmark_av1_tuning --data ../shared/data --out docs/benchmarks [--split validation|test]

Protocol:
- The clips of one split (evc_archive.training.splits; validation unless --split test), the benchmarks'
  128x128 crop of the first 30 frames.
- Intra: frames 0 and 15 of each clip (12 frames), every CRF from 63 to 15 by 4, per setting. For each
  frame, LPIPS of a setting is interpolated on a log-bytes axis and compared with the reference
  setting (preset 4, PSNR tune: the SVT-AV1 baseline's settings) at 8 byte counts per range, inside both
  curves; the table gives the mean relative change (negative = better) per range of bytes a frame.
- Inter GOP: each clip as one 30-frame GOP, every CRF from 63 to 23 by 4; LPIPS interpolated at
  0.05 and 0.07 bpp per clip (log-bpp), mean over the clips that reach it.
- Encoder settings only: the decoder (dav1d) needs none of them, so none changes the format.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from jobs.benchmarks_common import evaluation_clip

INTRA_VARIANTS = {  # name -> (preset, extra svtav1-params)
    "preset 4, PSNR tune (reference)": (4, ""),
    "preset 4, subjective tune": (4, "tune=0"),
    "preset 4, still-picture mode": (4, "avif=1"),
    "preset 3, subjective tune, still picture": (3, "tune=0:avif=1"),
    "preset 2, subjective tune, still picture": (2, "tune=0:avif=1"),
    "preset 1, subjective tune, still picture (shipped)": (1, "tune=0:avif=1"),
    "preset 0, subjective tune, still picture": (0, "tune=0:avif=1"),
}
INTRA_RANGES = ((100, 250), (250, 600), (600, 1500))  # bytes a 128x128 frame
GOP_VARIANTS = {
    "preset 4, PSNR tune": (4, ""),
    "preset 4, subjective tune": (4, "tune=0"),
    "preset 2, subjective tune (shipped)": (2, "tune=0"),
}
GOP_TARGETS = (0.05, 0.07)


def intra_curve(frame: np.ndarray, preset: int, params: str, metric) -> tuple[list[tuple[int, float]], float]:
    """One frame over the CRF grid -> ([(bytes, LPIPS)], seconds per encode)."""
    from evc_archive.core.metrics import score_frames
    from evc_archive.core.keyframes.av1_intra import AV1IntraCodec, svtav1_encoder, video_frame

    decoder = AV1IntraCodec()
    sizes, recons, spent = [], [], 0.0
    for crf in range(63, 14, -4):
        t0 = time.perf_counter()
        enc = svtav1_encoder(128, 128, 1, preset, crf, "keyint=1" + (f":{params}" if params else ""))
        data = b"".join(bytes(p) for p in [*enc.encode(video_frame(frame, 0)), *enc.encode(None)])[2:]
        spent += time.perf_counter() - t0
        sizes.append(len(data))
        recons.append(decoder.decode(data, 1, 128, 128))
    scores = score_frames(metric, torch.stack(recons), torch.from_numpy(frame)[None].expand(len(recons), -1, -1, -1).contiguous())
    return list(zip(sizes, scores.tolist())), spent / len(sizes)


def at_log(curve: list[tuple[float, float]], x: float) -> float | None:
    xs = np.log([c[0] for c in curve])
    order = np.argsort(xs)
    xs, ys = xs[order], np.array([c[1] for c in curve])[order]
    return float(np.interp(x, xs, ys)) if xs[0] <= x <= xs[-1] else None


def measure_intra(frames: list[np.ndarray], metric) -> dict:
    """INTRA_VARIANTS on the frames -> name -> {curves, ms_per_encode, relative_lpips per byte range}."""
    intra = {}
    for name, (preset, params) in INTRA_VARIANTS.items():
        runs = [intra_curve(f, preset, params, metric) for f in frames]
        intra[name] = {"curves": [r[0] for r in runs], "ms_per_encode": 1000 * float(np.mean([r[1] for r in runs]))}
        print(f"intra {name}: {intra[name]['ms_per_encode']:.0f} ms per encode", flush=True)
    reference = intra[next(iter(INTRA_VARIANTS))]["curves"]
    for name, row in intra.items():
        row["relative_lpips"] = {}
        for lo, hi in INTRA_RANGES:
            deltas = []
            for curve, ref in zip(row["curves"], reference):
                for x in np.linspace(np.log(lo), np.log(hi), 8):
                    a, b = at_log(curve, x), at_log(ref, x)
                    if a is not None and b is not None:
                        deltas.append((a - b) / b)
            row["relative_lpips"][f"{lo}-{hi}"] = float(np.mean(deltas)) if deltas else None
    return intra


def measure_gop(clips: dict[str, np.ndarray], metric) -> dict:
    """GOP_VARIANTS on each clip as one GOP -> name -> {curves, s_per_gop, lpips_at per target}."""
    from evc_archive.core import gop_av1
    from evc_archive.core.metrics import score_frames
    from evc_archive.core.keyframes.av1_intra import strip_delimiter

    gop = {}
    pixels = 30 * 128 * 128
    for name, (preset, params) in GOP_VARIANTS.items():
        per_clip, spent, n = {}, 0.0, 0
        for clip_name, clip in clips.items():
            src = torch.from_numpy(clip)
            curve = []
            for crf in range(63, 22, -4):
                t0 = time.perf_counter()
                enc = gop_av1.svtav1_encoder(128, 128, 30, preset, crf, "keyint=30" + (f":{params}" if params else ""))
                packets = [p for i in range(30) for p in enc.encode(gop_av1.video_frame(clip[i], i))] + list(enc.encode(None))
                data = b"".join(strip_delimiter(bytes(p)) for p in packets)
                spent, n = spent + time.perf_counter() - t0, n + 1
                rec = gop_av1.decode_gop(data, 30, 128, 128)
                curve.append((len(data) * 8 / pixels, float(score_frames(metric, rec, src).mean())))
            per_clip[clip_name] = curve
        gop[name] = {"curves": per_clip, "s_per_gop": spent / n,
                     "lpips_at": {str(t): [v for v in (at_log(c, np.log(t)) for c in per_clip.values()) if v is not None]
                                  for t in GOP_TARGETS}}
        print(f"gop {name}: {gop[name]['s_per_gop']:.2f} s per 30-frame GOP", flush=True)
    return gop


def write_report(intra: dict, gop: dict, meta: dict, frames: int, clips: int, out: Path) -> None:
    from evc_archive.training.splits import split_note

    lines = ["# SVT-AV1 settings for the keyframe codec and the inter GOP segments", "",
             f"Generated by `jobs/benchmark_av1_tuning.py` on {meta['date']} ({meta['machine']}).", "",
             split_note(meta["split"], meta["clips"]), "",
             __doc__.split("Protocol:")[1].strip(), "",
             f"## Intra keyframes ({frames} {meta['split']} frames, 128x128)", "",
             "| setting | " + " | ".join(f"LPIPS change at {lo}-{hi} bytes" for lo, hi in INTRA_RANGES) + " | ms per encode |",
             "|---|" + "---|" * (len(INTRA_RANGES) + 1)]
    for name, row in intra.items():
        cells = [f"{v:+.1%}" if v is not None else "-" for v in row["relative_lpips"].values()]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {row['ms_per_encode']:.0f} |")
    lines += ["", f"## Inter GOP segments ({clips} {meta['split']} clips, 128x128x30)", "",
              "| setting | " + " | ".join(f"mean LPIPS at {t} bpp (clips)" for t in GOP_TARGETS) + " | s per GOP |",
              "|---|" + "---|" * (len(GOP_TARGETS) + 1)]
    for name, row in gop.items():
        cells = [f"{np.mean(v):.4f} ({len(v)})" if v else "-" for v in row["lpips_at"].values()]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {row['s_per_gop']:.2f} |")
    lines += ["", "Means over different clip sets are comparable only where the clip counts agree.", ""]
    out.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    import datetime
    import os
    import platform

    os.environ.setdefault("SVT_LOG", "1")
    from evc_archive.core.metrics import shared_lpips
    from evc_archive.training.splits import add_split_option, clips_in

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder (video/)")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    add_split_option(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    metric = shared_lpips()
    clips = {p.stem: evaluation_clip(p).numpy() for p in clips_in(args.data / "video", args.split)}
    frames = [clip[i] for clip in clips.values() for i in (0, 15)]
    intra, gop = measure_intra(frames, metric), measure_gop(clips, metric)
    meta = {"date": datetime.date.today().isoformat(), "split": args.split, "clips": list(clips),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, 2 threads"}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "av1_tuning.json").write_text(json.dumps({"intra": intra, "gop": gop, "meta": meta}))
    write_report(intra, gop, meta, len(frames), len(clips), args.out / "av1_tuning.md")
    print(f"wrote {args.out / 'av1_tuning.md'}")


if __name__ == "__main__":
    main()
