"""The report of benchmark_ablation's results: docs/benchmarks/ablation.{md,png} from its results
dict (clips, baselines' CRF sweeps, ours per combination and clip, keyframe codecs alone, meta)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evc_archive.core.loop import RESIDUAL_SEARCH
from evc_archive.core.registry import KEYFRAME_CODECS, PREDICTORS
from evc_archive.io.baselines import BASELINES as ANCHORS
from jobs.benchmarks_common import ABLATION_CURVE_TARGETS as CURVE_TARGETS
from jobs.benchmarks_common import ABLATION_TARGETS as TARGETS
from jobs.benchmarks_common import matched, parse_combo

REPORTED = ("lpips_vgg", "dists")  # metrics nothing in the encoder optimises, reported beside LPIPS
BASELINES = tuple(ANCHORS)  # every anchor of io.baselines: x264, x265, svtav1, svtav1-p2, each also -half


def _fmt(x, nd=3):
    return "n/a" if x is None else f"{x:.{nd}f}"


def _mean(vals):
    vals = [v for v in vals if v is not None]
    return (float(np.mean(vals)), len(vals)) if vals else (None, 0)


def baseline_at(results: dict, clip: str, target: float) -> dict:
    cells = {c: matched(results["baselines"][clip][c], target, "lpips") for c in BASELINES}
    psnrs = {c: matched(results["baselines"][clip][c], target, "psnr") for c in BASELINES}
    reach = {c: v for c, v in cells.items() if v is not None}
    best = min(reach, key=reach.get) if reach else None
    out = {"lpips": cells, "psnr": psnrs, "best": best,
           "best_lpips": reach[best] if best else None, "best_psnr": psnrs[best] if best else None}
    for key in REPORTED:  # the best anchor on each reported metric itself; older caches lack them
        curves = results["baselines"][clip]
        values = [matched(curves[c], target, key) for c in BASELINES if all(key in p for p in curves[c])]
        out[f"best_{key}"] = min((v for v in values if v is not None), default=None)
    return out


def finished(results: dict) -> dict:
    """The combinations with every clip done."""
    return {k: v for k, v in results["ours"].items() if "partial" not in v}


def summary_rows(results: dict) -> list[dict]:
    rows = []
    for combo, per_clip in finished(results).items():
        kf, pred, residual, inter = parse_combo(combo)
        for t in TARGETS:
            cells = [per_clip[c]["targets"][str(t)] for c in results["clips"]]
            means = {k: _mean([c.get(k, 0) for c in cells])[0]
                     for k in ("residual_frames", "bpp", "lpips", "psnr", "coded", "encode_fps", "decode_fps")}
            rows.append({"combo": combo, "keyframe": kf, "predictor": pred, "target": t,
                         "loop": ("residual" if residual else "intra") + (" + inter GOP fallback" if inter else ""),
                         "inter_segments": sum(bool(c.get("inter")) for c in cells), **means,
                         **{k: _mean([c.get(k) for c in cells])[0] for k in REPORTED},  # real encodes only
                         "over": sum(c["over"] for c in cells),
                         "search_s": _mean([per_clip[c]["search_seconds"] for c in results["clips"]])[0],
                         "search": "/".join(sorted({per_clip[c].get("search", "grid") for c in results["clips"]}))})
    return rows


def loop_table(results: dict, summary: list[dict]) -> list[str]:
    machine = results["meta"]["machine"]
    lines = [f"## Closed loop on {len(results['clips'])} {results['split']} clips (128x128, 30 frames), matched bpp", "",
             "Means over clips. over = clips where even the cheapest setting exceeds the target (its "
             f"cheapest point is used). coded as: intra = every coded frame on its own (the paper's loop); "
             f"residual = a rejected frame may be coded against its prediction (core.residual), "
             f"levels above the first frame's tried: {RESIDUAL_SEARCH}; + inter GOP fallback = rate control may "
             f"instead code the clip as one AV1 inter GOP (core.gop_av1), inter = clips where it did. fps: "
             f"{machine}, the chosen setting's single encode / decode.", "",
             "| keyframe codec | predictor | coded as | target bpp | bpp | over | inter | coded frames (residual) | LPIPS | LPIPS-VGG | DISTS | PSNR dB | encode fps | decode fps | rate-control sweep s/clip | search |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(summary, key=lambda r: (r["target"], r["keyframe"], r["loop"], r["predictor"])):
        lines.append(f"| {r['keyframe']} | {r['predictor']} | {r['loop']} | {r['target']} | {_fmt(r['bpp'], 4)} | {r['over']} | {r['inter_segments']} | "
                     f"{_fmt(r['coded'], 1)} ({_fmt(r['residual_frames'], 1)}) | {_fmt(r['lpips'])} | {_fmt(r['lpips_vgg'])} | {_fmt(r['dists'])} | "
                     f"{_fmt(r['psnr'], 2)} | {_fmt(r['encode_fps'], 1)} | {_fmt(r['decode_fps'], 1)} | {_fmt(r['search_s'], 1)} | {r['search']} |")
    return lines


def baseline_tables(results: dict, summary: list[dict]) -> list[str]:
    lines = ["", "### Baselines at the same targets (same clips)", "",
             "| target bpp | " + " | ".join(f"{c} LPIPS (n)" for c in BASELINES) + " | best-of LPIPS (n) | best-of LPIPS-VGG | best-of DISTS | best-of PSNR dB | "
             + " | ".join(f"{c} PSNR dB" for c in BASELINES) + " |",
             "|---|" + "---|" * (2 * len(BASELINES) + 4)]
    for t in TARGETS:
        at = [baseline_at(results, c, t) for c in results["clips"]]
        cells = [f"{_fmt(_mean([a['lpips'][c] for a in at])[0])} ({_mean([a['lpips'][c] for a in at])[1]})" for c in BASELINES]
        best = _mean([a["best_lpips"] for a in at])
        pcells = [_fmt(_mean([a["psnr"][c] for a in at])[0], 2) for c in BASELINES]
        lines.append(f"| {t} | " + " | ".join(cells) + f" | {_fmt(best[0])} ({best[1]}) | "
                     f"{_fmt(_mean([a['best_lpips_vgg'] for a in at])[0])} | {_fmt(_mean([a['best_dists'] for a in at])[0])} | "
                     f"{_fmt(_mean([a['best_psnr'] for a in at])[0], 2)} | " + " | ".join(pcells) + " |")
    lines += ["", "### Head to head: best combination vs best-of baselines, on the clips the baselines reach", "",
              "LPIPS-VGG and DISTS are reported only (nothing in the encoder optimises them); best-of on each "
              "metric separately.", "",
              "| target bpp | best combination | its LPIPS on those clips | best-of baselines LPIPS | "
              "its LPIPS-VGG | best-of baselines LPIPS-VGG | its DISTS | best-of baselines DISTS | clips |",
              "|---|---|---|---|---|---|---|---|---|"]
    for t in TARGETS:
        at = {c: baseline_at(results, c, t) for c in results["clips"]}
        reach = [c for c in results["clips"] if at[c]["best"] is not None]
        combo = min((r for r in summary if r["target"] == t), key=lambda r: r["lpips"])["combo"]
        ours = _mean([results["ours"][combo][c]["targets"][str(t)]["lpips"] for c in reach])[0]
        ours_at = [results["ours"][combo][c]["targets"][str(t)] for c in reach]
        reported = []
        for k in REPORTED:  # ours, then the best anchor on that metric
            reported += [_fmt(_mean([o.get(k) for o in ours_at])[0]), _fmt(_mean([at[c][f"best_{k}"] for c in reach])[0])]
        lines.append(f"| {t} | {combo} | {_fmt(ours)} | {_fmt(_mean([at[c]['best_lpips'] for c in reach])[0])} | "
                     + " | ".join(reported) + f" | {len(reach)} |")
    return lines


def comparisons(summary: list[dict]) -> list[str]:
    lines = ["", "### What wins, what loses (computed from the table above)", ""]
    get = {(r["combo"], r["target"]): r["lpips"] for r in summary}
    combos = sorted({r["combo"] for r in summary})
    for t in TARGETS:
        ranked = sorted((get[(c, t)], c) for c in combos)
        lines.append(f"- {t} bpp, mean LPIPS best first: " + ", ".join(f"{c} {v:.3f}" for v, c in ranked))

    def compare(a: str, b: str, label: str) -> None:
        if (a, TARGETS[0]) in get and (b, TARGETS[0]) in get:
            deltas = [(get[(a, t)] - get[(b, t)]) / get[(b, t)] for t in TARGETS]
            lines.append(f"- {label}: LPIPS change at " + ", ".join(f"{t}: {d:+.1%}" for t, d in zip(TARGETS, deltas))
                         + (" (loses everywhere)" if min(deltas) > 0 else ""))

    for c in combos:
        kf, pred, residual, inter = parse_combo(c)
        suffix = "+residual" if residual else ""
        if inter:
            compare(c, c.removesuffix("+inter"), f"{c} vs {c.removesuffix('+inter')} (inter GOP fallback)")
            if pred != "copy-last":
                compare(c, f"{kf}+copy-last{suffix}+inter", f"{c} vs {kf}+copy-last{suffix}+inter")
            continue
        if pred != "copy-last":
            compare(c, f"{kf}+copy-last{suffix}", f"{c} vs {kf}+copy-last{suffix}")
        if kf == "svtav1":
            compare(c, f"hyperprior+{pred}{suffix}", f"{c} vs hyperprior+{pred}{suffix} (keyframe codec)")
        if residual:
            compare(c, f"{kf}+{pred}", f"{c} vs {kf}+{pred} (residual coding)")
    return lines


def keyframe_tables(results: dict) -> list[str]:
    lines = []
    for dataset, rows in results.get("keyframes", {}).items():
        lines += ["", f"## Keyframe codecs alone: {dataset}", "",
                  "| codec | quality | bpp | PSNR dB | LPIPS | other codec at same bpp: PSNR dB | LPIPS | n |",
                  "|---|---|---|---|---|---|---|---|"]
        codecs = [s.name for s in KEYFRAME_CODECS.specs()]
        for cname in codecs:
            other = next(c for c in codecs if c != cname)
            for q in sorted({r["quality"] for r in rows if r["codec"] == cname}):
                sel = [r for r in rows if r["codec"] == cname and r["quality"] == q]
                lines.append(f"| {cname} | {q} | {_fmt(_mean([r['bpp'] for r in sel])[0])} | "
                             f"{_fmt(_mean([r['psnr'] for r in sel])[0], 2)} | {_fmt(_mean([r['lpips'] for r in sel])[0])} | "
                             f"{_fmt(_mean([r[other + '_psnr'] for r in sel])[0], 2)} | "
                             f"{_fmt(_mean([r[other + '_lpips'] for r in sel])[0])} | {_mean([r[other + '_lpips'] for r in sel])[1]} |")
    return lines


def write_report(results: dict, out: Path) -> None:
    from evc_archive.training.splits import split_note

    meta, summary = results["meta"], summary_rows(results)
    lines = ["# Ablation: keyframe codec x predictor", "",
             f"Generated by `jobs/benchmark_ablation.py` on {meta['date']} ({meta['machine']}).", "",
             split_note(results["split"], results["clips"]), "",
             "Protocol, and notes on these results: [ablation_notes.md](ablation_notes.md).", "",
             *loop_table(results, summary), *baseline_tables(results, summary), *comparisons(summary),
             *keyframe_tables(results), "", "![RD curves](ablation.png)", ""]
    (out / "ablation.md").write_text("\n".join(lines))


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), dpi=120)
    grid = np.geomspace(0.012, 0.1, 30)
    for i, c in enumerate(BASELINES):
        style, shade = ("-", "--", ":", "-.")[i % 4], "silver" if ANCHORS[c].scale > 1 else "gray"
        for ax, key in zip(axes, ("lpips", "psnr")):
            ys = []
            for b in grid:
                vals = [matched(results["baselines"][k][c], b, key) for k in results["clips"]]
                ys.append(np.mean(vals) if all(v is not None for v in vals) else np.nan)
            ax.plot(grid, ys, style, color=shade, label=f"{c} (all clips reach)")
    colors = {s.name: f"C{i}" for i, s in enumerate(PREDICTORS.specs())}
    for combo, per_clip in finished(results).items():
        kf, pred, residual, inter = parse_combo(combo)
        style = "-D" if inter else (("-o" if residual else ":^") if kf == "svtav1" else "--s")
        for ax, key in zip(axes, ("lpips", "psnr")):
            xs = [np.mean([per_clip[c]["targets"][str(t)]["bpp"] for c in results["clips"]]) for t in CURVE_TARGETS]
            ys = [np.mean([per_clip[c]["targets"][str(t)][key] for c in results["clips"]]) for t in CURVE_TARGETS]
            ax.plot(xs, ys, style, color=colors[pred], ms=3, lw=2 if inter else 1, label=combo.replace("+", " + "))
    for ax, key in zip(axes, ("mean LPIPS (lower is better)", "mean PSNR dB")):
        ax.set_xscale("log")
        ax.set_xlabel("bpp (whole .evc files / packets without SEI)")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_title(f"{results['split']} clips, 128x128x30, rate control per clip")
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "ablation.png")
    plt.close(fig)
