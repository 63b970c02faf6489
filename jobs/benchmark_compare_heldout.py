"""`evc-archive compare` on two evaluation clips, for docs/compare/: the CSV, RD plots and frame grids,
plus a check that its numbers agree with the codec benchmark (docs/benchmarks/codec.json).

    python -m jobs.benchmark_compare_heldout --data ../shared/data --out docs/compare
    python -m jobs.benchmark_compare_heldout --data ../shared/data --split test --out docs/compare/test \
        --codec-benchmark none --ablation docs/benchmarks/test/ablation.json

--split validation (the default; tuning) or test (the README's headline only): the clips come from that
split (evc_archive.training.splits); by default a static camera and a moving camera of it.

Protocol: the codec benchmark's (first 30 frames, short side resized to 128, centre crop 128x128,
coded at 25 fps, one segment per clip), so the same encoder runs give the same bytes:
- baselines (compare's default anchors, io.baselines): every CRF point of compare's sweep is looked
  up in the benchmarks' sweeps of the same clip (codec.json counts SEI bytes and has x264, x265 and
  svtav1 only; ablation.json and compare leave SEI out and sweep every anchor on the same CRFs,
  io.baselines.sweep_crfs); bpp and LPIPS must agree (the encoders are deterministic for the same
  input);
- ours (the defaults: SVT-AV1 intra + restore-hint, residual frames allowed, inter GOP fallback): compare's rate control at each target beside
  the ablation benchmark's choice for the same combination and clip.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

from evc_archive.training.splits import add_split_option, clips_in, split_note
from jobs.benchmarks_common import ABLATION_CURVE_TARGETS, ABLATION_THRESHOLDS, combo_name

# per split: a static camera and a moving one (chosen by content, SOURCES.md)
DEFAULT_CLIPS = {"validation": ("sam2_02_cups", "carnd_highway_dashcam"),
                 "test": ("bgslibrary_road_cam", "mmaction2_basketball_gym")}


def agreement(results, codec_bench: dict, ablation: dict, targets: tuple[float, ...], combo: str) -> dict:
    """compare's numbers beside the benchmarks': baseline sweep points (codec.json counts SEI bytes,
    ablation.json leaves them out, as compare does) and ours at each target (ablation.json's row of
    the same keyframe codec + predictor)."""
    from evc_archive.core.ratecontrol import RDPoint

    out = {"baselines": [], "ours": []}
    for video in results:
        pixels = video.frames.shape[0] * video.frames.shape[1] * video.frames.shape[2]
        for p in video.points:
            if p.kind != "sweep" or p.codec == "ours":
                continue
            crf = int(p.setting.split()[1])
            raw = next((r for r in codec_bench["baselines"].get(video.name, {}).get(p.codec, []) if r["crf"] == crf), None)
            ess = next((r for r in ablation["baselines"].get(video.name, {}).get(p.codec, []) if r["crf"] == crf), None)
            out["baselines"].append({
                "clip": video.name, "codec": p.codec, "crf": crf, "bpp": p.bpp, "lpips": p.lpips,
                "raw_bpp": (p.bytes + p.sei_bytes) * 8 / pixels,
                "codec_json_bpp": raw and raw["bpp"], "codec_json_lpips": raw and raw["lpips"],
                "ablation_bpp": ess and ess["bpp"], "ablation_lpips": ess and ess["lpips"]})
        bench = ablation["ours"].get(combo, {}).get(video.name, {}).get("targets", {})
        for t in targets:
            ours = next(p for p in video.points if p.codec == "ours" and p.kind == "target" and p.target_bpp == t)
            ref = bench.get(str(t)) or bench.get(f"{t:g}")
            out["ours"].append({"clip": video.name, "target": t, "bpp": ours.bpp, "lpips": ours.lpips,
                                "settings": ours.setting, "ablation_bpp": ref and ref["bpp"],
                                "ablation_lpips": ref and ref["lpips"],
                                "ablation_settings": ref and RDPoint(ref["quality"], ref["threshold"], 0, 1, 1, 0.0, 0.0, 0,
                                                                     ref.get("residual_levels"), ref.get("inter", False)).label})
    return out


def _max_diff(rows: list[dict], a: str, b: str) -> tuple[float, int]:
    pairs = [(r[a], r[b]) for r in rows if r[b] is not None]
    return (max(abs(x - y) for x, y in pairs) if pairs else float("nan")), len(pairs)


def write_agreement(path: Path, agree: dict, combo: str, split_line: str) -> None:
    from evc_archive.core.ratecontrol import DEFAULT_THRESHOLDS

    def grid(thresholds: tuple[float, ...]) -> str:
        return f"{len(thresholds)} thresholds {min(thresholds):g}-{max(thresholds):g}"

    base = agree["baselines"]
    d_raw, n_raw = _max_diff(base, "raw_bpp", "codec_json_bpp")
    d_rl, _ = _max_diff(base, "lpips", "codec_json_lpips")
    d_ess, n_ess = _max_diff(base, "bpp", "ablation_bpp")
    d_el, _ = _max_diff(base, "lpips", "ablation_lpips")
    fmt = (lambda v, d: "n/a" if v is None else f"{v:.{d}f}")
    lines = ["# compare vs the benchmarks", "", split_line, "",
             "Baselines: compare's CRF sweep points looked up in the benchmarks' sweeps of the same clips "
             "(same protocol: 30 frames, 128x128, 25 fps, one closed GOP).",
             f"- vs docs/benchmarks/codec.json (SEI bytes counted; compare's bytes + sei_bytes): {n_raw} points, "
             f"largest difference {d_raw:.2e} bpp, {d_rl:.2e} LPIPS.",
             f"- vs docs/benchmarks/ablation.json (SEI left out, as compare does): {n_ess} points, largest "
             f"difference {d_ess:.2e} bpp, {d_el:.2e} LPIPS.", "",
             f"Ours ({combo}) at each target: compare (rate control: `sweep_near` for the highest target over "
             f"{grid(DEFAULT_THRESHOLDS)} plus the loop's breakpoints in large gaps, Lagrangian allocation) vs the "
             f"ablation benchmark (`sweep_near` for {max(ABLATION_CURVE_TARGETS):g} bpp over {grid(ABLATION_THRESHOLDS)} plus "
             "breakpoints, best point within the budget); the two search different grids, so they "
             "may pick different settings:", "",
             "| clip | target | compare bpp | compare LPIPS | compare setting | ablation bpp | ablation LPIPS | ablation setting |",
             "|---|---|---|---|---|---|---|---|"]
    for r in agree["ours"]:
        lines.append(f"| {r['clip']} | {r['target']:g} | {r['bpp']:.4f} | {r['lpips']:.3f} | {r['settings']} | "
                     f"{fmt(r['ablation_bpp'], 4)} | {fmt(r['ablation_lpips'], 3)} | {r['ablation_settings'] or 'n/a'} |")
    path.write_text("\n".join(lines) + "\n")


def load_benchmark(path: Path, split: str) -> dict:
    """A benchmark's JSON, checked to be of `split` (files written before the splits existed: validation)."""
    data = json.loads(path.read_text())
    measured = data.get("split", "validation")
    if measured != split:
        raise SystemExit(f"{path} measured the {measured} split, not {split}: pass that split's run")
    return data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--out", type=Path, default=Path("docs/compare"))
    p.add_argument("--clips", default=None, help="clip names of the split, comma-separated (default: two per split)")
    p.add_argument("--bpp", default="0.02,0.03,0.05,0.07")
    p.add_argument("--codec-benchmark", type=Path, default=Path("docs/benchmarks/codec.json"),
                   help="the codec benchmark's JSON of the same split ('none': leave that agreement out)")
    p.add_argument("--ablation", type=Path, default=Path("docs/benchmarks/ablation.json"))
    add_split_option(p)
    args = p.parse_args(argv)

    from evc_archive.reports.compare import CompareOptions, run_compare

    names = [c.strip() for c in args.clips.split(",") if c.strip()] if args.clips else list(DEFAULT_CLIPS[args.split])
    paths = {q.stem: q for q in clips_in(args.data / "video", args.split)}
    unknown = [n for n in names if n not in paths]
    if unknown:
        raise SystemExit(f"not {args.split} clips here: {unknown} (choose from {sorted(paths)})")
    codec_bench = ({"baselines": {}} if str(args.codec_benchmark) == "none"
                   else load_benchmark(args.codec_benchmark, args.split))
    ablation = load_benchmark(args.ablation, args.split)
    targets = tuple(float(v) for v in args.bpp.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp, "clips.csv")  # an input manifest: exactly these clips, in this order
        listing.write_text("uri\n" + "".join(f"{paths[n].resolve()}\n" for n in names))
        opts = CompareOptions(str(listing), args.out, targets, gop=30, max_frames=30, size=128, fps=Fraction(25),
                              label=f"{args.split} clips {', '.join(names)} (first 30 frames, 128x128, 25 fps)")
        results = run_compare(opts, lambda m: print(m, file=sys.stderr, flush=True))
    combo = combo_name(opts.keyframe_codec, opts.predictor, opts.residual_levels, opts.inter_fallback)
    agree = agreement(results, codec_bench, ablation, targets, combo)
    (args.out / "agreement.json").write_text(json.dumps(agree, indent=1) + "\n")
    write_agreement(args.out / "agreement.md", agree, combo, split_note(args.split, names))
    print((args.out / "agreement.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
