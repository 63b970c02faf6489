"""Rate-control benchmark: our target-bpp search and corpus allocation against a brute-force sweep.

    python -m jobs.benchmark_ratecontrol --data ../shared/data --out docs/benchmarks [--split validation|test]

Corpus: the clips of one split (evc_archive.training.splits; the 6 validation clips unless --split test),
first 30 frames each at 128x128 (short side resized, centre crop),
one 30-frame segment per clip (--frames 60 gives 12 segments). For every segment:
- brute force: 28 thresholds (0.1 .. 0.55) x all 5 keyframe qualities = 140 independent full
  encodes (no shared work), a superset of the paper's 56-setting sweep; its envelope is the best
  corpus LPIPS reachable at a byte budget (our own allocation run on the full tables);
- ours: `SegmentSimulator.sweep_near` (10 thresholds, only near the target, shared work), then
  `allocate` for the corpus budget; the chosen settings are re-encoded for real to confirm bytes.
Baselines x264 / x265 / SVT-AV1 (one closed GOP per segment, raw packet bytes, CRF sweep) give the
conventional curves of the plot. Results: docs/benchmarks/ratecontrol.{md,json,png}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from jobs.benchmarks_common import evaluation_clip

TARGETS = (0.02, 0.03, 0.05)
BRUTE_THRESHOLDS = tuple(round(x, 4) for x in np.linspace(0.1, 0.55, 28))
BASELINE_CODECS = ("x264", "x265", "svtav1")
# the paper's setting: its learned codec's 5 quality levels, copy-last, every coded frame intra
CODEC, PREDICTOR = "hyperprior", "copy-last"


class SearchCost:
    """Counts what rate control's search computes (ratecontrol.SimulationCost's counters), through
    the codec and predictor it is handed: every keyframe encode and predictor call it makes, and the
    frames whose LPIPS it measures (one per coded frame, one per predicted frame)."""

    def __init__(self, coder):
        from evc_archive.core.segment_coding import SegmentCoder

        self.keyframe_encodes = self.predictor_calls = self.lpips_frames = 0
        cost = self

        class Codec:
            def __getattr__(self, name):
                return getattr(coder.codec, name)

            def encode(self, frame, quality):
                cost.keyframe_encodes += 1
                cost.lpips_frames += 1
                return coder.codec.encode(frame, quality)

        class Predictor:
            def __getattr__(self, name):
                return getattr(coder.predictor, name)

            def hint_candidates(self, context, targets):
                cost.predictor_calls += 1
                cost.lpips_frames += len(targets)
                return coder.predictor.hint_candidates(context, targets)

        self.coder = SegmentCoder(Codec(), Predictor(), coder.metric, coder.fps)


def brute_force(coder, segments, base) -> tuple[list, float]:
    """Every (quality, threshold) of every segment as its own encode -> (RDPoint tables, seconds
    per encode)."""
    from dataclasses import replace

    from evc_archive.core.ratecontrol import RDPoint
    from evc_archive.core.segment_coding import encode_at

    tables, seconds = [], []
    for name, seg in segments:
        t0 = time.perf_counter()
        table = []
        for q in coder.codec.qualities:
            for thr in BRUTE_THRESHOLDS:
                enc = encode_at(coder, seg, replace(base, lpips_threshold=thr, quality=q))
                r = enc.result
                table.append(RDPoint(q, thr, len(enc.data), 30, 30 * 128 * 128, float(r.lpips.mean()),
                                     float(r.psnr.mean()), sum(r.segment.coded)))
        seconds.append(time.perf_counter() - t0)
        tables.append(table)
        print(f"brute force {name}: {seconds[-1]:.1f} s", flush=True)
    return tables, float(np.sum(seconds) / (len(segments) * len(coder.codec.qualities) * len(BRUTE_THRESHOLDS)))


def ours_at(target: float, coder, segments, base, brute, encode_seconds: float, default_encode_seconds: float) -> dict:
    """Search every segment near the target, allocate the corpus budget, re-encode the choices
    (bytes checked) and set the result beside the brute-force envelope at the bpp achieved."""
    from evc_archive.core.ratecontrol import allocate
    from evc_archive.core.segment_coding import encode_at, search_points

    t0 = time.perf_counter()
    tables, costs = [], []
    for _, seg in segments:
        costs.append(SearchCost(coder))
        tables.append(search_points(costs[-1].coder, seg, base, target))
    alloc = allocate(tables, target)
    search_seconds = time.perf_counter() - t0
    coded = [encode_at(coder, seg, base, point=c.point) for (_, seg), c in zip(segments, alloc.choices)]
    pixels, frames = sum(t[0].pixels for t in tables), sum(t[0].frames for t in tables)
    achieved = sum(len(c.data) for c in coded) * 8 / pixels
    ours_lpips = sum(float(c.lpips.sum()) for c in coded) / frames
    env = allocate(brute, achieved)  # the sweep's envelope at the bpp we achieved
    env_lpips = sum(c.point.lpips * c.point.frames for c in env.choices) / frames
    return {
        "target_bpp": target, "achieved_bpp": achieved, "within_5pct": abs(achieved - target) <= 0.05 * target,
        "note": alloc.note, "mean_lpips": ours_lpips, "envelope_lpips_at_same_bpp": env_lpips, "envelope_bpp": env.bpp,
        "lpips_gap": ours_lpips - env_lpips, "search_seconds_per_segment": search_seconds / len(segments),
        "full_encode_seconds": encode_seconds, "default_encode_seconds": default_encode_seconds,
        "encode_equivalents_per_segment": search_seconds / len(segments) / encode_seconds,
        # each loop point of a search is one setting it simulated
        "settings_evaluated_per_segment": float(np.mean([sum(not p.inter for p in t) for t in tables])),
        "keyframe_encodes_per_segment": float(np.mean([c.keyframe_encodes for c in costs])),
        "predictor_calls_per_segment": float(np.mean([c.predictor_calls for c in costs])),
        "lpips_frames_per_segment": float(np.mean([c.lpips_frames for c in costs])),
        "choices": [{"segment": n, "quality": c.point.quality, "threshold": c.point.threshold, "bpp": c.point.bpp,
                     "lpips": c.point.lpips} for (n, _), c in zip(segments, alloc.choices)],
    }


def corpus_curves(segments, brute, metric) -> tuple[list, dict]:
    """The plot's curves at corpus level: the sweep's envelope and the baselines' CRF sweeps."""
    from evc_archive.core.metrics import score_frames
    from evc_archive.core.ratecontrol import allocate
    from evc_archive.io.baselines import crf_sweep

    envelope = []
    for b in np.geomspace(0.008, 0.2, 30):
        a = allocate(brute, float(b))
        envelope.append((a.bpp, sum(c.point.lpips * c.point.frames for c in a.choices) / sum(c.point.frames for c in a.choices)))
    baseline_curves = {}
    for codec_name in BASELINE_CODECS:
        per_seg = [crf_sweep(seg.numpy(), codec_name) for _, seg in segments]
        pts = []
        for k in range(len(per_seg[0])):  # the same CRF on every segment
            total_bytes = sum(s[k].bytes for s in per_seg)
            lp = [float(score_frames(metric, torch.from_numpy(s[k].frames), seg).mean()) for s, (_, seg) in zip(per_seg, segments)]
            pts.append((total_bytes * 8 / (len(segments) * 30 * 128 * 128), float(np.mean(lp))))
        baseline_curves[codec_name] = pts
    return envelope, baseline_curves


def main(argv: list[str] | None = None) -> None:
    import datetime

    from evc_archive.core.metrics import shared_lpips
    from evc_archive.core.model_library import ModelLibrary
    from evc_archive.core.ratecontrol import RDPoint
    from evc_archive.core.segment_coding import SegmentCoder, encode_at
    from evc_archive.core.settings import EncoderSettings
    from evc_archive.training.splits import add_split_option, clips_in

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument("--frames", type=int, default=30, help="frames per clip (30 = one segment per clip)")
    parser.add_argument("--reuse-brute", type=Path, default=None,
                        help="ratecontrol.json of an earlier run: reuse its brute-force tables (same clips)")
    add_split_option(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    lib = ModelLibrary()
    coder = SegmentCoder(lib.keyframe_named(CODEC), lib.predictor_named(PREDICTOR), shared_lpips())
    base = EncoderSettings()  # the loop's plain form: intra only, no inter GOP
    segments = []
    clips = clips_in(args.data / "video", args.split)
    for path in clips:
        clip = evaluation_clip(path, args.frames)
        segments += [(f"{path.stem}/{i // 30}", clip[i:i + 30]) for i in range(0, len(clip), 30)]
    # 1. brute force: independent encodes (or the tables of an earlier run)
    if args.reuse_brute:
        old = json.loads(args.reuse_brute.read_text())
        if old["meta"]["segments"] != [n for n, _ in segments]:
            raise SystemExit(f"{args.reuse_brute} holds other segments than --split {args.split} gives")
        brute = [[RDPoint(**p) for p in t] for t in old["brute_tables"]]
        encode_seconds = old["meta"]["full_encode_seconds"]
    else:
        brute, encode_seconds = brute_force(coder, segments, base)
    # a quiet reference for the search cost: one full encode at the default setting, timed here
    t0 = time.perf_counter()
    for _, seg in segments:
        encode_at(coder, seg, base)
    default_encode_seconds = (time.perf_counter() - t0) / len(segments)
    # 2. ours, per target: shared-work search near the target, corpus allocation, real re-encode
    results = []
    for target in TARGETS:
        results.append(ours_at(target, coder, segments, base, brute, encode_seconds, default_encode_seconds))
        print(json.dumps({k: v for k, v in results[-1].items() if k != "choices"}), flush=True)
    # 3. curves for the plot
    envelope, baseline_curves = corpus_curves(segments, brute, coder.metric)
    meta = {"date": datetime.date.today().isoformat(), "split": args.split, "clips": [p.stem for p in clips],
            "segments": [n for n, _ in segments],
            "brute_force_settings_per_segment": len(coder.codec.qualities) * len(BRUTE_THRESHOLDS),
            "full_encode_seconds": encode_seconds}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ratecontrol.json").write_text(json.dumps({
        "meta": meta, "results": results, "envelope": envelope, "baselines": baseline_curves,
        "brute_tables": [[p.row() for p in t] for t in brute]}, indent=1))
    _plot(results, envelope, baseline_curves, meta, args.out / "ratecontrol.png")
    _report(results, meta, args.out / "ratecontrol.md")


def _plot(results, envelope, baselines, meta, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for name, style in zip(baselines, ("-", "--", ":")):
        xs, ys = zip(*sorted(baselines[name]))
        ax.plot(xs, ys, style, color="gray", label=name)
    xs, ys = zip(*sorted(envelope))
    ax.plot(xs, ys, "-", color="tab:blue", alpha=0.6, label="brute-force sweep envelope (140 encodes/segment)")
    ax.scatter([r["achieved_bpp"] for r in results], [r["mean_lpips"] for r in results], color="tab:red", zorder=3,
               label="rate control (--target-bpp 0.02 / 0.03 / 0.05)")
    ax.set_xscale("log")
    ax.set_xlim(0.007, 0.25)
    ax.set_xlabel("corpus bpp")
    ax.set_ylabel("mean LPIPS (lower is better)")
    ax.set_title(f"{meta['split']} clips, {len(results[0]['choices'])} segments of 128x128x30")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _report(results, meta, path: Path) -> None:
    from evc_archive.training.splits import split_note

    lines = ["# Rate control benchmark", "", f"`jobs/benchmark_ratecontrol.py`, {meta['date']}, 2 CPU cores.", "",
             split_note(meta["split"], meta["clips"]), "",
             __doc__.split("\n\n", 2)[2].strip(), "",
             "| target bpp | achieved bpp | within 5 % | mean LPIPS | sweep envelope LPIPS at same bpp | gap | settings simulated / segment | keyframe encodes / segment | search time / segment | in full-encode equivalents | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['target_bpp']} | {r['achieved_bpp']:.4f} | {r['within_5pct']} | {r['mean_lpips']:.4f} | "
                     f"{r['envelope_lpips_at_same_bpp']:.4f} | {r['lpips_gap']:+.4f} | {r['settings_evaluated_per_segment']:.1f} | "
                     f"{r['keyframe_encodes_per_segment']:.1f} | {r['search_seconds_per_segment']:.2f} s | "
                     f"{r['encode_equivalents_per_segment']:.1f} | {r['note']} |")
    lines += ["", f"Brute force: {meta['brute_force_settings_per_segment']} full encodes per segment.", "",
              "![LPIPS vs bpp](ratecontrol.png)", ""]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
