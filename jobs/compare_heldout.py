"""`evc-archive compare` on held-out clips, for docs/compare/: the CSV, RD plots and frame grids,
plus a check that its numbers agree with the codec benchmark (docs/benchmarks/codec.json).

    python jobs/compare_heldout.py --data ../shared/data --out docs/compare

Protocol: the codec benchmark's (first 30 frames, short side resized to 128, centre crop 128x128,
coded at 25 fps, one segment per clip), so the same encoder runs give the same bytes:
- baselines: every CRF point of compare's sweep is looked up in the benchmark's sweep of the same
  clip; bpp and LPIPS must agree (x264/x265/SVT-AV1 are deterministic for the same input);
- ours: compare rate-controls to each target; the benchmark ran fixed (quality, threshold)
  settings. Compare's LPIPS at a target must be no worse than the best benchmark setting within
  that budget (rate control searches a superset of those settings), up to LPIPS noise.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_CLIPS = ("sam2_02_cups", "carnd_highway_dashcam")


def agreement(results, bench: dict, targets: tuple[float, ...]) -> dict:
    out = {"baselines": [], "ours": []}
    for video in results:
        curves = bench["baselines"].get(video.name, {})
        for p in video.points:
            if p.kind != "sweep" or p.codec == "ours":
                continue
            crf = int(p.setting.split()[1])
            ref = next((r for r in curves.get(p.codec, []) if r["crf"] == crf), None)
            if ref is not None:
                out["baselines"].append({"clip": video.name, "codec": p.codec, "crf": crf, "bpp": p.bpp,
                                         "bench_bpp": ref["bpp"], "lpips": p.lpips, "bench_lpips": ref["lpips"]})
        fixed = [r for r in bench["ours"] if r["clip"] == video.name and r["predictor"] == "copy-last"]
        for t in targets:
            ours = next(p for p in video.points if p.codec == "ours" and p.kind == "target" and p.target_bpp == t)
            within = [r for r in fixed if r["bpp"] <= t]
            best = min(within, key=lambda r: r["lpips"]) if within else None
            out["ours"].append({"clip": video.name, "target": t, "bpp": ours.bpp, "lpips": ours.lpips,
                                "bench_best_bpp": best["bpp"] if best else None,
                                "bench_best_lpips": best["lpips"] if best else None,
                                "bench_best_setting": f"q{best['quality']}/t{best['threshold']}" if best else None})
    return out


def write_agreement(path: Path, agree: dict) -> None:
    base = agree["baselines"]
    d_bpp = max(abs(r["bpp"] - r["bench_bpp"]) for r in base)
    d_lp = max(abs(r["lpips"] - r["bench_lpips"]) for r in base)
    lines = ["# compare vs the codec benchmark", "",
             f"Baselines: {len(base)} CRF points of compare's sweeps found in the benchmark's sweeps of the same "
             f"clips; largest difference: {d_bpp:.2e} bpp, {d_lp:.2e} LPIPS.", "",
             "Ours at each target (compare: rate control) vs the best fixed setting of the benchmark within the "
             "same budget (copy-last predictor, one segment per clip):", "",
             "| clip | target | compare bpp | compare LPIPS | benchmark best setting | its bpp | its LPIPS |",
             "|---|---|---|---|---|---|---|"]
    for r in agree["ours"]:
        fmt = (lambda v, d: "n/a" if v is None else f"{v:.{d}f}")
        lines.append(f"| {r['clip']} | {r['target']:g} | {r['bpp']:.4f} | {r['lpips']:.3f} | "
                     f"{r['bench_best_setting'] or 'none within budget'} | {fmt(r['bench_best_bpp'], 4)} | "
                     f"{fmt(r['bench_best_lpips'], 3)} |")
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--out", type=Path, default=Path("docs/compare"))
    p.add_argument("--clips", default=",".join(DEFAULT_CLIPS), help="Held-out clip names, comma-separated.")
    p.add_argument("--bpp", default="0.02,0.03,0.05,0.07")
    p.add_argument("--benchmark", type=Path, default=Path("docs/benchmarks/codec.json"))
    args = p.parse_args(argv)

    from evc_archive.reports.compare import CompareOptions, run_compare
    from evc_archive.training.data import HELD_OUT_CLIPS, held_out_clips

    names = [c.strip() for c in args.clips.split(",") if c.strip()]
    unknown = [n for n in names if n not in HELD_OUT_CLIPS]
    if unknown:
        raise SystemExit(f"not held-out clips: {unknown} (choose from {sorted(HELD_OUT_CLIPS)})")
    paths = {q.stem: q for q in held_out_clips(args.data / "video")}
    targets = tuple(float(v) for v in args.bpp.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp, "clips.csv")  # an input manifest: exactly these clips, in this order
        listing.write_text("uri\n" + "".join(f"{paths[n].resolve()}\n" for n in names))
        opts = CompareOptions(str(listing), args.out, targets, gop=30, max_frames=30, size=128, fps=Fraction(25),
                              label=f"held-out clips {', '.join(names)} (first 30 frames, 128x128, 25 fps)")
        results = run_compare(opts, lambda m: print(m, file=sys.stderr, flush=True))
    bench = json.loads(args.benchmark.read_text())
    agree = agreement(results, bench, targets)
    (args.out / "agreement.json").write_text(json.dumps(agree, indent=1) + "\n")
    write_agreement(args.out / "agreement.md", agree)
    print((args.out / "agreement.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
