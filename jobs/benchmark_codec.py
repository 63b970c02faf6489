"""Benchmark of the codec core: keyframe codec on Kodak, the whole loop on evaluation clips, against
x264 / x265 / SVT-AV1 through PyAV at matched bpp, plus encode/decode speed. Writes
docs/benchmarks/codec.{md,json} and an RD plot.

    python -m jobs.benchmark_codec --data ../shared/data --out docs/benchmarks [--split validation|test]

Protocol (also written into the report):
- The clips of one split (evc_archive.training.splits; validation unless --split test): the first 30 frames,
  short side resized to 128 with an area filter, centre-cropped to 128x128.
- Ours: every byte of the .evc file counts (header and CRC included), one segment per clip.
- Baselines: one closed GOP per clip, raw packet bytes (no container), CRF sweep, quality
  interpolated at our bpp per clip on a log-bpp axis (points outside a codec's range are left out
  and counted).
- Kodak: the keyframe codec alone per quality level vs SVT-AV1 (preset 4, one intra frame) at
  matched bpp per image.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from jobs.benchmarks_common import evaluation_clip, matched, timed_round_trip

# the learned models this benchmark measures (the paper's method: a learned image codec, a diffusion
# predictor), beside copy-last; the product's defaults are measured in benchmark_ablation
LEARNED_CODEC, LEARNED_PREDICTOR = "hyperprior", "diffusion"
THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.5)
TARGETS = (0.02, 0.03, 0.05, 0.07)
CODECS = ("x264", "x265", "svtav1")


def baseline_curves(clip: np.ndarray, metric) -> dict:
    from evc_archive.core.metrics import score_frames
    from evc_archive.core.source_scores import psnr_frames
    from evc_archive.io.baselines import crf_sweep

    curves = {}
    n, h, w, _ = clip.shape
    for codec in CODECS:
        pts = []
        for r in crf_sweep(clip, codec):
            rec = torch.from_numpy(r.frames)
            src = torch.from_numpy(clip)
            pts.append({"crf": r.crf, "bpp": r.bpp(w, h), "lpips": float(score_frames(metric, rec, src).mean()),
                        "psnr": float(psnr_frames(rec, src).mean())})
        curves[codec] = pts
    return curves


def run_clips(args, codec, predictors, metric) -> dict:
    from evc_archive.core.segment_coding import SegmentCoder
    from evc_archive.core.settings import EncoderSettings
    from evc_archive.training.splits import clips_in

    clips = {p.stem: evaluation_clip(p) for p in clips_in(args.data / "video", args.split)}
    results = {"clips": list(clips), "split": args.split, "ours": [], "baselines": {}}
    for name, clip in clips.items():
        t0 = time.perf_counter()
        results["baselines"][name] = baseline_curves(clip.numpy(), metric)
        print(f"{name}: baselines in {time.perf_counter() - t0:.0f} s", flush=True)
    for pname, (predictor, steps) in predictors.items():
        for q in codec.qualities:
            for thr in THRESHOLDS:
                # the paper's loop: every rejected frame coded on its own
                settings = EncoderSettings(lpips_threshold=thr, quality=q, gop=30, sampling_steps=steps)
                for name, clip in clips.items():
                    enc, t_enc, t_dec = timed_round_trip(SegmentCoder(codec, predictor, metric), clip, settings)
                    row = {"predictor": pname, "steps": steps, "quality": q, "threshold": thr, "clip": name,
                           "bpp": enc.bpp, "bytes": len(enc.data), "coded": sum(enc.result.segment.coded),
                           "lpips": float(enc.lpips.mean()), "psnr": float(enc.result.psnr.mean()),
                           "encode_fps": 30 / t_enc, "decode_fps": 30 / t_dec}
                    for c in CODECS:
                        row[f"{c}_lpips"] = matched(results["baselines"][name][c], enc.bpp, "lpips")
                        row[f"{c}_psnr"] = matched(results["baselines"][name][c], enc.bpp, "psnr")
                    results["ours"].append(row)
                print(f"{pname} q{q} thr {thr}: done", flush=True)
    return results


def run_kodak(args, codec, metric) -> list[dict]:
    from PIL import Image

    from evc_archive.core.metrics import score_frames
    from evc_archive.core.source_scores import psnr_frames
    from evc_archive.io.baselines import encode_baseline

    rows = []
    for path in sorted((args.data / "images" / "kodak").glob("*.png")):
        img = torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy())
        h, w = img.shape[:2]
        curve = []
        for crf in range(20, 64, 4):
            r = encode_baseline(img[None].numpy(), "svtav1", crf)
            rec = torch.from_numpy(r.frames)
            curve.append({"bpp": r.bpp(w, h), "psnr": float(psnr_frames(rec, img[None])[0]),
                          "lpips": float(score_frames(metric, rec, img[None])[0])})
        for q in codec.qualities:
            payload = codec.encode(img, q)
            rec = codec.decode(payload, q, h, w)[None]
            bpp = len(payload) * 8 / (h * w)
            rows.append({"image": path.stem, "quality": q, "bpp": bpp,
                         "psnr": float(psnr_frames(rec, img[None])[0]), "lpips": float(score_frames(metric, rec, img[None])[0]),
                         "svtav1_psnr": matched(curve, bpp, "psnr"), "svtav1_lpips": matched(curve, bpp, "lpips")})
        print(f"kodak {path.stem}: done", flush=True)
    return rows


def _mean(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return (float(np.mean(vals)), len(vals)) if vals else (None, 0)


def _fmt(x, nd=3):
    return "n/a" if x is None else f"{x:.{nd}f}"


def write_report(results: dict, kodak: list[dict], out: Path, meta: dict) -> None:
    from evc_archive.training.splits import split_note

    lines = ["# Codec benchmark", "", f"Generated by `jobs/benchmark_codec.py` on {meta['date']} ({meta['machine']}).", "",
             split_note(results["split"], results["clips"]), "",
             __doc__.split("Protocol (also written into the report):")[1].strip(), "",
             "## Keyframe codec alone on Kodak (24 images, full size)", "",
             "| quality | bpp | PSNR dB | LPIPS | SVT-AV1 intra PSNR at same bpp | SVT-AV1 intra LPIPS at same bpp |",
             "|---|---|---|---|---|---|"]
    for q in sorted({r["quality"] for r in kodak}):
        rows = [r for r in kodak if r["quality"] == q]
        lines.append(f"| {q} | {_fmt(_mean(rows, 'bpp')[0])} | {_fmt(_mean(rows, 'psnr')[0], 2)} | {_fmt(_mean(rows, 'lpips')[0])} | "
                     f"{_fmt(_mean(rows, 'svtav1_psnr')[0], 2)} (n={_mean(rows, 'svtav1_psnr')[1]}) | "
                     f"{_fmt(_mean(rows, 'svtav1_lpips')[0])} |")
    lines += ["", f"## Whole loop on {len(results['clips'])} {results['split']} clips (128x128, 30 frames)", "",
              "Means over clips. Baseline columns: that codec's LPIPS interpolated at our bpp on each clip "
              "(n = clips where our bpp fell inside its CRF range).", "",
              "| predictor | steps | quality | threshold | bpp | coded frames | LPIPS | PSNR dB | x264 LPIPS | x265 LPIPS | SVT-AV1 LPIPS | encode fps | decode fps |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["predictor"], r["steps"], r["quality"], r["threshold"]) for r in results["ours"]})
    for p, s, q, t in keys:
        rows = [r for r in results["ours"] if (r["predictor"], r["steps"], r["quality"], r["threshold"]) == (p, s, q, t)]
        base = " | ".join(f"{_fmt(_mean(rows, c + '_lpips')[0])} (n={_mean(rows, c + '_lpips')[1]})" for c in CODECS)
        lines.append(f"| {p} | {s} | {q} | {t} | {_fmt(_mean(rows, 'bpp')[0], 4)} | {_fmt(_mean(rows, 'coded')[0], 1)} | "
                     f"{_fmt(_mean(rows, 'lpips')[0])} | {_fmt(_mean(rows, 'psnr')[0], 2)} | {base} | "
                     f"{_fmt(_mean(rows, 'encode_fps')[0], 1)} | {_fmt(_mean(rows, 'decode_fps')[0], 1)} |")
    lines += ["", "## Baselines at fixed bpp (mean over clips, interpolated per clip)", "",
              "| codec | " + " | ".join(f"LPIPS @ {t}" for t in TARGETS) + " |", "|---|" + "---|" * len(TARGETS)]
    for c in CODECS:
        cells = []
        for t in TARGETS:
            vals = [matched(results["baselines"][k][c], t, "lpips") for k in results["clips"]]
            vals = [v for v in vals if v is not None]
            cells.append(f"{np.mean(vals):.3f} (n={len(vals)})" if vals else "n/a")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines += ["", "![RD plot](codec_rd.png)", ""]
    (out / "codec.md").write_text("\n".join(lines))


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    grid = np.geomspace(0.01, 0.2, 40)
    for c, style in zip(CODECS, ("-", "--", ":")):
        ys = []
        for b in grid:
            vals = [matched(results["baselines"][k][c], b, "lpips") for k in results["clips"]]
            ys.append(np.mean(vals) if all(v is not None for v in vals) else np.nan)
        ax.plot(grid, ys, style, color="gray", label=c)
    for pname, marker in zip(sorted({r["predictor"] for r in results["ours"]}), "os^"):
        pts = {}
        for r in results["ours"]:
            if r["predictor"] == pname:
                pts.setdefault((r["quality"], r["threshold"]), []).append((r["bpp"], r["lpips"]))
        xy = np.array([np.mean(v, axis=0) for v in pts.values()])
        ax.scatter(xy[:, 0], xy[:, 1], marker=marker, s=14, label=f"ours ({pname})")
    ax.set_xscale("log")
    ax.set_xlabel("bpp (whole files / raw packets)")
    ax.set_ylabel("mean LPIPS (lower is better)")
    ax.set_title(f"{results['split']} clips, 128x128x30")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "codec_rd.png")
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    import datetime
    import platform

    from evc_archive.core.metrics import shared_lpips
    from evc_archive.core.model_library import ModelLibrary
    from evc_archive.training.splits import add_split_option

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder (video/, images/kodak/)")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument("--steps", default="1", help="diffusion sampling steps to benchmark, comma-separated")
    parser.add_argument("--skip-kodak", action="store_true")
    add_split_option(parser)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    lib = ModelLibrary()
    codec, metric = lib.keyframe_named(LEARNED_CODEC), shared_lpips()
    predictors = {"copy-last": (lib.predictor_named("copy-last"), 1)}
    for s in args.steps.split(","):
        predictors[f"{LEARNED_PREDICTOR}-{s}step"] = (lib.predictor_named(LEARNED_PREDICTOR), int(s))
    kodak = [] if args.skip_kodak else run_kodak(args, codec, metric)
    results = run_clips(args, codec, predictors, metric)
    meta = {"date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, {torch.get_num_threads()} threads"}
    (args.out / "codec.json").write_text(json.dumps({"meta": meta, "kodak": kodak, **results}, indent=1))
    write_report(results, kodak, args.out, meta)
    plot(results, args.out)
    print(f"wrote {args.out / 'codec.md'}")


if __name__ == "__main__":
    main()
