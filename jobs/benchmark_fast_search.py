"""Rate control's fast (or quick) search alone, per validation clip and target: what it chooses (bpp, LPIPS)
and what that costs (seconds, keyframe encodes, predictor calls, LPIPS-scored frames). Each run is
kept under a label, so two versions of the search (run from two checkouts) sit side by side in
docs/benchmarks/fast_search.{md,json}.

    python -m jobs.benchmark_fast_search --data ../shared/data --label "2026-12-03 main" [--size 128x128] \
        [--mode-frames N] [--residual 0,none] [--frame0-shares 0.25,0.5,0.72]   # variants of the fast search
    python -m jobs.benchmark_fast_search --data ../shared/data --label "2026-12-03 quick" --search quick
    python -m jobs.benchmark_fast_search --data ../shared/data --label "2026-12-07 exhaustive" --search exhaustive

Per (clip of the validation split, target): a fresh core.ratecontrol.SegmentSimulator with the
product's settings (the default predictor, residual choices and the inter fallback), the fast
search's points (core.fast_search.fast_points) and the lowest-LPIPS point within the target
(ratecontrol.choose_for_target). --search exhaustive is the reference the narrow searches are held
to: per clip one SegmentSimulator.sweep_near for the highest target (the sweep `submit --search
exhaustive` runs), whose points serve every lower target; its cost is the clip's whole sweep, on each
of the clip's rows. Nothing is encoded beyond what the search simulates: every point
is exact (the simulator runs the encoder's loop), so its bytes and LPIPS are what encoding it gives.
Clips: the first 30 frames at --size (short side resized, centre crop; jobs.benchmark_scale.segment_at).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from datetime import date
from pathlib import Path

import torch

TARGETS = (0.02, 0.03, 0.05)


def git_revision() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                           check=False).stdout.strip()
    return (out.stdout.strip() or "unknown") + ("+changes" if dirty else "")


def run(data: Path, width: int, height: int, targets: tuple[float, ...], threads: int, variant: dict,
        search: str = "fast", clips: tuple[str, ...] | None = None) -> list[dict]:
    """variant: {mode_frames, residual_choices, frame0_shares, inter_margin} overriding the search's (`search`:
    core.fast_search.FAST or QUICK; absent: its own). `clips`: these validation clips only (names
    without suffix; None: all)."""
    from dataclasses import replace

    from evc_archive.core.fast_search import FAST, QUICK, fast_points
    from evc_archive.core.hint_search import FAST_MODE_FRAMES, HintSearch
    from evc_archive.core.metrics import shared_lpips
    from evc_archive.core.model_library import ModelLibrary
    from evc_archive.core.ratecontrol import choose_for_target
    from evc_archive.core.registry import DEFAULT_PREDICTOR
    from evc_archive.core.segment_coding import SegmentCoder, segment_simulator
    from evc_archive.core.settings import EncoderSettings
    from evc_archive.training.splits import validation_clips
    from jobs.benchmark_scale import segment_at

    torch.set_num_threads(threads)
    library = ModelLibrary()
    coder = SegmentCoder(library.keyframe_named("svtav1"), library.predictor_named(DEFAULT_PREDICTOR), shared_lpips())
    settings = EncoderSettings.product("svtav1", search="fast")
    rows = []
    paths = validation_clips(data / "video")
    if clips is not None:
        unknown = set(clips) - {p.stem for p in paths}
        if unknown:
            raise SystemExit(f"not validation clips: {', '.join(sorted(unknown))}")
        paths = [p for p in paths if p.stem in clips]
    for path in paths:
        frames = torch.from_numpy(segment_at(path, width, height)[0])
        if search == "exhaustive":
            exhaustive = EncoderSettings.product("svtav1", search="exhaustive")  # its own hint policy too
            rows.extend(run_exhaustive(segment_simulator(coder, frames, exhaustive), path.stem, targets))
            continue
        for target in targets:
            mode_frames = variant.get("mode_frames", FAST_MODE_FRAMES)
            simulator = segment_simulator(coder, frames, settings, hints=None if mode_frames == FAST_MODE_FRAMES
                                          else HintSearch("fast", frames, mode_frames))
            t0 = time.perf_counter()
            knobs = {k: v for k, v in variant.items() if k != "mode_frames"}
            narrow = replace(QUICK if search == "quick" else FAST, **knobs)
            choice = choose_for_target(fast_points(simulator, target, narrow), target)
            seconds = time.perf_counter() - t0
            rows.append(result_row(path.stem, target, choice.point, seconds, simulator.cost))
    return rows


def run_exhaustive(simulator, clip: str, targets: tuple[float, ...]) -> list[dict]:
    """One sweep_near for the highest target, then each target's choice from its points."""
    from evc_archive.core.ratecontrol import choose_for_target

    t0 = time.perf_counter()
    points = simulator.sweep_near(max(targets))
    seconds = time.perf_counter() - t0
    return [result_row(clip, target, choose_for_target(points, target).point, seconds, simulator.cost)
            for target in targets]


def result_row(clip: str, target: float, point, seconds: float, cost) -> dict:
    """One (clip, target) row: the chosen point and the search's cost (printed as it is made)."""
    print(f"{clip} {target}: {point.label} {point.bpp:.4f} bpp LPIPS {point.lpips:.4f} in {seconds:.1f} s", flush=True)
    return {"clip": clip, "target_bpp": target, "setting": point.label, "bpp": point.bpp, "lpips": point.lpips,
            "psnr": point.psnr, "seconds": seconds, "keyframe_encodes": cost.keyframe_encodes,
            "predictor_calls": cost.predictor_calls, "lpips_frames": cost.lpips_frames,
            "inter_encodes": cost.inter_encodes, "settings_evaluated": cost.settings_evaluated}


def write_report(runs: dict, out: Path) -> None:
    lines = ["# Fast search: what it chooses and what it costs", "",
             "Written by `jobs/benchmark_fast_search.py`; split: validation. Per run (label: checkout, date, "
             "machine): means over clips of the chosen point's LPIPS and bpp per target, and the search's mean "
             "cost per (clip, target): seconds, keyframe encodes (intra and residual frames), predictor calls, "
             "LPIPS-scored frames (those of the chosen hints), inter GOP encodes; a proxy run (branch "
             "wip/proxy-search, core/proxy_search.py) also counts its proxy's. Every point is exact (no encode beyond the search).", ""]
    for label, r in runs.items():
        lines += [f"## {label}", "", f"{r['revision']}, {r['date']}, {r['machine']}, {r['size']}, {r['threads']} "
                  f"torch thread(s), search: {r.get('method', 'fast')}.", "",
                  "| target bpp | mean bpp | mean LPIPS | mean PSNR dB | s | keyframe encodes | predictor calls | "
                  "LPIPS frames | inter encodes |", "|---|---|---|---|---|---|---|---|---|"]
        for target in sorted({row["target_bpp"] for row in r["rows"]}):
            rows = [row for row in r["rows"] if row["target_bpp"] == target]

            def mean(key: str, rows=rows) -> float:
                return sum(row.get(key, 0) for row in rows) / len(rows)

            def count(key: str, digits: int = 0, rows=rows) -> str:
                """the exact simulator's count, and a proxy search's beside it where the run had one"""
                proxy = f" + {mean('proxy_' + key):.{digits}f} proxy" if "proxy_" + key in rows[0] else ""
                return f"{mean(key):.{digits}f}{proxy}"

            lines.append(f"| {target:g} | {mean('bpp'):.4f} | {mean('lpips'):.4f} | {mean('psnr'):.2f} | "
                         f"{mean('seconds'):.1f} | {count('keyframe_encodes')} | {count('predictor_calls')} | "
                         f"{count('lpips_frames')} | {count('inter_encodes', 1)} |")
        lines += ["", "Per clip (target: setting, bpp, LPIPS):", ""]
        for clip in dict.fromkeys(row["clip"] for row in r["rows"]):
            cells = [f"{row['target_bpp']:g}: {row['setting']} {row['bpp']:.4f} / {row['lpips']:.4f}"
                     for row in r["rows"] if row["clip"] == clip]
            lines.append(f"- {clip}: " + "; ".join(cells))
        lines.append("")
    out.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder (video/)")
    parser.add_argument("--label", required=True,
                        help="name of this run in the report (a run of that name is replaced; with --clips only "
                             "those clips' rows of it)")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"), help="folder of fast_search.{md,json}")
    parser.add_argument("--size", default="128x128", help="WIDTHxHEIGHT of the segments")
    parser.add_argument("--targets", default=",".join(map(str, TARGETS)), help="bpp targets, comma-separated")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--search", choices=("fast", "quick", "exhaustive"), default="fast",
                        help="core.fast_search.FAST or QUICK, with the variants below; or the exhaustive sweep "
                             "(the reference: the variants do not apply)")
    parser.add_argument("--clips", default=None,
                        help="validation clips to run, comma-separated names without suffix (default: all six)")
    parser.add_argument("--mode-frames", type=int, default=None,
                        help="score restore-hint's modes on a call's first N frames, 0 = every frame "
                             "(default: core.hint_search.FAST_MODE_FRAMES)")
    parser.add_argument("--residual", default=None,
                        help="the residual choices, comma-separated, 'none' = intra only "
                             "(default: the search's residual_choices, core.fast_search)")
    parser.add_argument("--frame0-shares", default=None,
                        help="first-frame shares of the budget, comma-separated "
                             "(default: the search's frame0_shares, core.fast_search)")
    parser.add_argument("--inter-margin", type=float, default=None,
                        help="stop the loop's chains once its best point is this much LPIPS above the inter GOP's "
                             "(default: the search's inter_margin)")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    targets = tuple(float(t) for t in args.targets.split(","))
    variant = {}
    if args.mode_frames is not None:
        variant["mode_frames"] = args.mode_frames or None
    if args.residual is not None:
        variant["residual_choices"] = tuple(None if r == "none" else int(r) for r in args.residual.split(","))
    if args.frame0_shares is not None:
        variant["frame0_shares"] = tuple(float(v) for v in args.frame0_shares.split(","))
    if args.inter_margin is not None:
        variant["inter_margin"] = args.inter_margin
    rows = run(args.data, width, height, targets, args.threads, variant, args.search,
               None if args.clips is None else tuple(args.clips.split(",")))
    path = args.out / "fast_search.json"
    runs = json.loads(path.read_text()) if path.is_file() else {}
    if args.clips is not None and args.label in runs:  # a subset joins the run of that label: its clips' rows replaced
        rows = sorted([row for row in runs[args.label]["rows"] if row["clip"] not in {r["clip"] for r in rows}] + rows,
                      key=lambda row: (row["clip"], row["target_bpp"]))
    runs[args.label] = {"revision": git_revision(), "date": date.today().isoformat(), "size": args.size,
                        "method": ", ".join([args.search] + [f"{k} {v}" for k, v in variant.items()]),
                        "threads": args.threads, "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs",
                        "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(runs, indent=1))
    write_report(runs, args.out / "fast_search.md")


if __name__ == "__main__":
    main()
