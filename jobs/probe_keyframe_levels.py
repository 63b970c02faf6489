"""Probe for the next default: AV1 intra keyframe levels every 2 CRF (25 levels, 63..15) instead of
every 4 (13 levels), in the default combination (svtav1 + motion-hint + residual + inter), same clips
and same search as jobs/benchmark_ablation.py. Writes docs/benchmarks/keyframe_levels.{md,json}.

    python jobs/probe_keyframe_levels.py --data ../shared/data --out docs/benchmarks [--workers 2]
    python jobs/probe_keyframe_levels.py --report-only docs/benchmarks/keyframe_levels.json

The shipped table is not changed by this probe: adopting it changes the quality levels of the
codec (a stream's quality field is informational, so old streams decode either way) and needs the
whole ablation re-run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

COMBO = "svtav1+motion-hint+residual+inter"
FINE = {q: 63 - 2 * (q - 1) for q in range(1, 26)}
TARGETS = ("0.02", "0.03", "0.05", "0.07")


WIDE_RESIDUAL_SEARCH = (None, 0, 1, 2, 3)  # instead of core.loop.RESIDUAL_SEARCH = (None, 1, 3)


def run_fine(name: str, clip, threads: int, wide_residual_search: bool = False) -> dict:
    """run_clip of the ablation with the finer CRF table (patched in this worker process) and,
    optionally, residual frames tried at 0, 1, 2 and 3 levels up."""
    from evc_archive.core import keyframe_av1, loop
    from jobs.benchmark_ablation import run_clip

    keyframe_av1.CRF_BY_QUALITY.clear()
    keyframe_av1.CRF_BY_QUALITY.update(FINE)
    if wide_residual_search:
        loop.RESIDUAL_SEARCH = WIDE_RESIDUAL_SEARCH
    result = run_clip(COMBO, name, clip, threads)
    result.pop("points", None)
    return result


def _stem(wide: bool) -> str:
    return "keyframe_levels_wide" if wide else "keyframe_levels"


def report(results: dict, ablation: dict, out: Path) -> None:
    import numpy as np

    ref = ablation["ours"][COMBO]
    clips = list(results["clips"])
    lines = ["# Probe: keyframe levels every 2 CRF", "", __doc__.split("\n\n")[0].replace("\n", " "), "",
             f"Clips: {', '.join(clips)}. Reference: the ablation's row (13 levels, same search).", "",
             "| target bpp | 13 levels (shipped) LPIPS | 25 levels LPIPS | 13 levels bpp | 25 levels bpp |", "|---|---|---|---|---|"]
    for t in TARGETS:
        a = np.mean([ref[c]["targets"][t]["lpips"] for c in clips])
        b = np.mean([results["ours"][c]["targets"][t]["lpips"] for c in clips])
        ab = np.mean([ref[c]["targets"][t]["bpp"] for c in clips])
        bb = np.mean([results["ours"][c]["targets"][t]["bpp"] for c in clips])
        lines.append(f"| {t} | {a:.4f} | {b:.4f} | {ab:.4f} | {bb:.4f} |")
    sa = np.mean([ref[c]["search_seconds"] for c in clips])
    sb = np.mean([results["ours"][c]["search_seconds"] for c in clips])
    lines += ["", f"Rate-control search per clip: {sa:.0f} s (13 levels) vs {sb:.0f} s (25 levels), "
              f"{results['meta']}.", "", "Per clip, LPIPS 13 -> 25 levels:", ""]
    for c in clips:
        lines.append(f"- {c}: " + ", ".join(f"{t}: {ref[c]['targets'][t]['lpips']:.3f} -> "
                                            f"{results['ours'][c]['targets'][t]['lpips']:.3f}" for t in TARGETS))
    if results.get("wide_residual_search"):
        lines.insert(2, f"Residual levels tried: {WIDE_RESIDUAL_SEARCH} (shipped: intra only, 1, 3).")
    (out / f"{_stem(results.get('wide_residual_search', False))}.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    os.environ.setdefault("SVT_LOG", "1")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--report-only", type=Path, default=None, help="rewrite the report from this JSON")
    p.add_argument("--wide-residual-search", action="store_true",
                   help=f"also try residual levels {WIDE_RESIDUAL_SEARCH} (writes keyframe_levels_wide.*)")
    args = p.parse_args(argv)
    ablation = json.loads((args.out / "ablation.json").read_text())
    if args.report_only:
        report(json.loads(args.report_only.read_text()), ablation, args.out)
        return
    from evc_archive.training.data import held_out_clips
    from jobs.benchmark_codec import evaluation_clip

    clips = {q.stem: evaluation_clip(q).numpy() for q in held_out_clips(args.data / "video")}
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {n: pool.submit(run_fine, n, clip, 1, args.wide_residual_search) for n, clip in clips.items()}
        ours = {n: f.result() for n, f in futures.items()}
    import platform

    results = {"clips": list(clips), "ours": ours, "wide_residual_search": args.wide_residual_search,
               "meta": f"{platform.machine()}, {os.cpu_count()} CPUs, {args.workers} tasks at once, 1 thread each"}
    (args.out / f"{_stem(args.wide_residual_search)}.json").write_text(json.dumps(results, indent=1))
    report(results, ablation, args.out)


if __name__ == "__main__":
    main()
