"""Scale benchmark: rate-controlled coding of one 30-frame segment per clip at 128x128, 640x360,
1280x720 and 1920x1080, beside one SVT-AV1 preset-2 encode of the same segment in the same run.
Writes docs/benchmarks/scale.{md,json}.

    python -m jobs.benchmark_scale --data ../shared/data --out docs/benchmarks [--sizes 128x128,640x360]

Per (size, clip of the split, validation unless --split test), in a fresh process (so that its peak
RSS is the segment's own):
- the clip's first 30 frames, short side resized (area) to the size's height and centre-cropped;
  sizes above the clip's own are upscaled (Lanczos) and marked "upscaled";
- ours: rate control for --target-bpp (core.segment_coding.search_points, the product's settings
  with --search), then what the worker does with the chosen point: its carried stream decoded
  (checked against the simulated frames), or, without one, encoded for real (bytes checked) and
  decoded (checked bit-exact): the whole per-segment cost, timed;
- SVT-AV1 preset 2 tune=0 (core.gop_av1, our inter fallback's setting) at the level of its own
  closest to the target: one encode, timed;
- peak RSS of the process (resource.getrusage), bytes, LPIPS (and LPIPS-VGG, not optimised).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import resource
import time
from pathlib import Path

import numpy as np

SIZES = ("128x128", "640x360", "1280x720", "1920x1080")
# per split: a static camera and a moving one, both 640x360 in the source (larger sizes are upscaled)
DEFAULT_CLIPS = {"validation": ("sam2_02_cups", "carnd_highway_dashcam"),
                 "test": ("bgslibrary_road_cam", "sam2_04_coffee")}
FRAMES = 30


def segment_at(path: Path, width: int, height: int) -> tuple[np.ndarray, bool]:
    """(FRAMES,height,width,3) uint8: the clip's start, short side resized and centre-cropped; and
    whether that upscaled it."""
    from PIL import Image

    from evc_archive.io.video_read import read_frames

    frames = read_frames(path, 0, FRAMES)
    h, w = frames.shape[1:3]
    scale = max(width / w, height / h)
    out = []
    for f in frames:
        size = (max(width, round(w * scale)), max(height, round(h * scale)))
        im = Image.fromarray(f).resize(size, Image.LANCZOS if scale > 1 else Image.BOX)
        x0, y0 = (size[0] - width) // 2, (size[1] - height) // 2
        out.append(np.asarray(im)[y0:y0 + height, x0:x0 + width])
    return np.stack(out), scale > 1


def final_encode(coder, clip, settings, point):
    """What the worker does after the search -> (CodedSegment, encode s, verify-decode s): the
    point's carried stream decoded (that decode is the verify: 0 s after it), or, for a point
    without one, encoded again and verify-decoded (jobs.benchmarks_common.timed_round_trip)."""
    from evc_archive.core.segment_coding import encode_at
    from jobs.benchmarks_common import timed_round_trip

    if point.stream is None:
        return timed_round_trip(coder, clip, settings, point)
    t0 = time.perf_counter()
    coded = encode_at(coder, clip, settings, point=point)
    return coded, time.perf_counter() - t0, 0.0


def run_one(path: str, width: int, height: int, target: float, search: str, threads: int,
            keyframe_preset: int | None = None) -> dict:
    """One (clip, size) in this process -> its row."""
    import torch

    from evc_archive.core.gop_av1 import CRF_BY_LEVEL, encode_gop
    from evc_archive.core.keyframes.av1_intra import AV1IntraCodec, preset_for
    from evc_archive.core.metrics import shared_lpips
    from evc_archive.core.model_library import ModelLibrary
    from evc_archive.core.registry import DEFAULT_PREDICTOR
    from evc_archive.core.ratecontrol import choose_for_target
    from evc_archive.core.reported_metrics import reported_scores
    from evc_archive.core.segment_coding import SegmentCoder, search_points
    from evc_archive.core.settings import EncoderSettings

    torch.set_num_threads(threads)
    frames, upscaled = segment_at(Path(path), width, height)
    clip = torch.from_numpy(frames)
    lib = ModelLibrary()
    keyframes = lib.keyframe_named("svtav1") if keyframe_preset is None else AV1IntraCodec(preset=keyframe_preset)
    coder = SegmentCoder(keyframes, lib.predictor_named(DEFAULT_PREDICTOR), shared_lpips())
    settings = EncoderSettings.product("svtav1", search=search)
    t0 = time.perf_counter()
    points = search_points(coder, clip, settings, target)
    choice = choose_for_target(points, target)
    search_s = time.perf_counter() - t0
    coded, encode_s, decode_s = final_encode(coder, clip, settings, choice.point)
    ours_s = search_s + encode_s + decode_s
    pixels = clip.shape[0] * width * height
    # the anchor: SVT-AV1 preset 2 at its level nearest the target (from the search's inter points
    # when it made them, else the level whose bytes the fast search's secant would try first)
    inter = [p for p in points if p.inter and p.bpp <= target]
    level = max(inter, key=lambda p: p.bpp).quality if inter else min(CRF_BY_LEVEL)
    t0 = time.perf_counter()
    av1 = encode_gop(clip, level)
    av1_s = time.perf_counter() - t0
    reported = reported_scores(coded.result.reconstruction, clip)
    return {"date": time.strftime("%Y-%m-%d"), "clip": Path(path).stem, "size": f"{width}x{height}",
            "upscaled": upscaled, "search": search,
            "target_bpp": target, "threads": threads, "keyframe_preset": keyframe_preset or preset_for(height, width),
            "setting": choice.point.label, "note": choice.note,
            "bytes": len(coded.data), "bpp": len(coded.data) * 8 / pixels,
            "lpips": float(coded.lpips.mean()), "lpips_vgg": float(reported.lpips_vgg.mean()),
            "psnr": float(coded.result.psnr.mean()), "points": len(points),
            "search_s": search_s, "encode_s": encode_s, "decode_s": decode_s, "ours_s": ours_s,
            "frames_per_s": clip.shape[0] / ours_s, "svtav1_p2_level": level, "svtav1_p2_s": av1_s,
            "svtav1_p2_bpp": len(av1) * 8 / pixels, "ratio": ours_s / av1_s,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def write_report(rows: list[dict], out: Path, meta: dict) -> None:
    lines = ["# Scale: rate-controlled coding from 128x128 to 1080p", "",
             f"Generated by `jobs/benchmark_scale.py` (last run {meta['date']}; each row's date in its first column; "
             f"{meta['machine']}, {meta['cpus']} CPUs, {meta['threads']} torch threads), split: {meta['split']}, "
             f"one {FRAMES}-frame segment per clip.", "",
             "ours s = rate control's search + the final encode (the chosen point's carried stream decoded, which "
             "is the verify; or, for a point without one, encoded again and verify-decoded); ratio = ours s / "
             "one SVT-AV1 preset-2 (tune=0) encode of the same segment in the same process (the issue's bound: 20). "
             "Peak RSS: the whole process (models, LPIPS, the clip). LPIPS: full size, of the final reconstruction "
             "(since 2026-12-04 the loop's decisions compare a proxy at most 320x180-sized: "
             "EncoderSettings.scoring_pixels). LPIPS-VGG is not optimised by anything (scored at most "
             "320x180-sized: core.metrics.scoring_size). What the rows show and what is missing: "
             "[scale_notes.md](scale_notes.md). kf preset: the SVT-AV1 preset of the keyframe and residual encodes "
             "(av1_intra.preset_for; 1 at every size before 2026-12-07).", "",
             "| date | size | clip | target | search | kf preset | setting | bpp | LPIPS | LPIPS-VGG | PSNR dB | points | search s | "
             "ours s | frames/s | SVT-AV1 p2 s | ratio | peak RSS MiB |", "|" + "---|" * 18]
    for r in rows:
        size = r["size"] + (" (upscaled)" if r["upscaled"] else "")
        lines.append(f"| {r.get('date', '')} | {size} | {r['clip']} | {r['target_bpp']:g} | {r['search']} | {r.get('keyframe_preset', 1)} | {r['setting']} | {r['bpp']:.4f} | {r['lpips']:.4f} | "
                     f"{r['lpips_vgg']:.4f} | {r['psnr']:.2f} | {r['points']} | {r['search_s']:.1f} | {r['ours_s']:.1f} | "
                     f"{r['frames_per_s']:.2f} | {r['svtav1_p2_s']:.2f} | {r['ratio']:.1f} | {r['peak_rss_mib']:.0f} |")
    out.joinpath("scale.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    from evc_archive.core.keyframes.av1_intra import preset_for
    from evc_archive.core.settings import SEARCHES
    from evc_archive.training.splits import add_split_option, clips_in

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="the shared data folder (video/)")
    p.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    p.add_argument("--sizes", default=",".join(SIZES), help="WIDTHxHEIGHT sizes, comma-separated")
    p.add_argument("--clips", default=None,
                   help="clip names of the split, comma-separated (default: its 640x360 clips of DEFAULT_CLIPS)")
    p.add_argument("--target-bpp", type=float, default=0.03)
    p.add_argument("--search", default="fast", help=f"one of {', '.join(SEARCHES)}, or both comma-separated")
    p.add_argument("--threads", type=int, default=2, help="torch threads (SVT-AV1 uses its own)")
    p.add_argument("--report-only", action="store_true", help="rewrite scale.md from scale.json")
    p.add_argument("--keyframe-preset", type=int, default=None,
                   help="code keyframes at this SVT-AV1 preset instead of the product's (av1_intra.preset_for)")
    p.add_argument("--rerun", action="store_true",
                   help="measure rows that scale.json already has again, replacing them (default: skip them)")
    add_split_option(p)
    args = p.parse_args(argv)
    searches = [s.strip() for s in args.search.split(",")]
    if any(s not in SEARCHES for s in searches):
        raise SystemExit(f"--search: choose from {', '.join(SEARCHES)}")
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    paths = {c.stem: c for c in clips_in(args.data / "video", args.split)}
    names = [c.strip() for c in args.clips.split(",")] if args.clips else list(DEFAULT_CLIPS[args.split])
    unknown = [n for n in names if n not in paths]
    if unknown:
        raise SystemExit(f"not {args.split} clips here: {unknown} (choose from {sorted(paths)})")
    clips = [paths[n] for n in names]
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "scale.json"
    rows = json.loads(results.read_text())["rows"] if results.is_file() else []
    if args.report_only:
        write_report(rows, args.out, json.loads(results.read_text())["meta"])
        return 0
    def key(r: dict) -> tuple:
        return r["clip"], r["size"], r["search"], r["target_bpp"], r.get("keyframe_preset", 1)

    done = set() if args.rerun else {key(r) for r in rows}
    ctx = multiprocessing.get_context("spawn")
    for width, height in sizes:
        for clip in clips:
            for search in searches:
                preset = args.keyframe_preset or preset_for(height, width)
                if (clip.stem, f"{width}x{height}", search, args.target_bpp, preset) in done:
                    continue
                with ctx.Pool(1, maxtasksperchild=1) as pool:  # a fresh process per row: its own peak RSS
                    row = pool.apply(run_one, (str(clip), width, height, args.target_bpp, search, args.threads,
                                               args.keyframe_preset))
                rows = [r for r in rows if key(r) != key(row)] + [row]
                rows.sort(key=lambda r: (int(r["size"].split("x")[0]) * int(r["size"].split("x")[1]),
                                         r["clip"], r["search"]))
                print(f"{time.strftime('%H:%M:%S')} {row['size']} {row['clip']} {search}: {row['setting']} "
                      f"bpp {row['bpp']:.4f} LPIPS {row['lpips']:.4f} ours {row['ours_s']:.1f} s ratio {row['ratio']:.1f} "
                      f"RSS {row['peak_rss_mib']:.0f} MiB", flush=True)
                meta = {"date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
                        "cpus": multiprocessing.cpu_count(), "threads": args.threads, "split": args.split,
                        "target": args.target_bpp}
                results.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
                write_report(rows, args.out, meta)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
