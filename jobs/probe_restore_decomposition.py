"""Where the restore-hint predictor's gain over copy-last comes from: restoration or motion.
Writes docs/benchmarks/restore_decomposition.{md,json}.

    python jobs/probe_restore_decomposition.py --data ../shared/data --ablation docs/benchmarks/ablation.json

A probe, not a product path: two variants that the product does not ship, run through the same
rate-control search as the ablation (`SegmentSimulator.sweep_near`, the same thresholds and window,
`choose_for_target`, SVT-AV1 keyframes, residual frames allowed), on the same 6 held-out clips:
- "restoration alone": restore-hint offering only its restored still frame (no motion, no fallback);
- "copy-last, restored coded frames": copy-last, but every intra-coded frame the decoder would get is
  replaced by its restoration (a decoder post-filter on coded frames; residual frames, already
  corrected against their prediction, are left as they are).
Both are simulated (no stream is written: the decoder has no such modes). The copy-last,
motion-hint and restore-hint rows are read from the ablation's JSON (same protocol).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

MODES = {"still": "restoration alone (restored still frame, no motion, no fallback)",
         "kf_copy": "copy-last, restored coded frames (decoder post-filter)"}
ABLATION_ROWS = {"svtav1+copy-last+residual": "copy-last", "svtav1+motion-hint+residual": "motion-hint (motion alone)",
                 "svtav1+restore-hint+residual": "restore-hint (the default predictor)"}


def run_mode(mode: str, clip: np.ndarray) -> dict:
    """One (mode, clip): the ablation's search with the variant patched in (in a worker process)."""
    from evc_archive.core import encoder
    from evc_archive.core.encoder import EncoderSettings
    from evc_archive.core.loop import DEFAULT_RESIDUAL_LEVELS, residual_search
    from evc_archive.core.metrics import shared_lpips
    from evc_archive.core.ratecontrol import SegmentSimulator, choose_for_target
    from evc_archive.core.registry import ModelLibrary
    from evc_archive.core.restore_hint import RestoreHintPredictor
    from jobs.benchmark_ablation import CURVE_TARGETS, SEARCH_WINDOW, THRESHOLDS

    torch.set_num_threads(1)
    lib, metric = ModelLibrary(), shared_lpips()
    restorer = lib.shipped_restorer()
    if mode == "still":
        RestoreHintPredictor.hint_candidates = lambda self, context, targets: [b""]
    else:
        coded = encoder.DirectPieces.intra

        def intra(self, i: int, quality: int):
            piece = coded(self, i, quality)
            return self._piece(piece.payload, restorer(piece.frame[None])[0], i)

        encoder.DirectPieces.intra = intra
    predictor = lib.predictor_named("restore-hint" if mode == "still" else "copy-last")
    base = EncoderSettings(sampling_steps=1, seed=0, residual_levels=DEFAULT_RESIDUAL_LEVELS)
    t0 = time.perf_counter()
    sim = SegmentSimulator(torch.from_numpy(clip), lib.keyframe_named("svtav1"), predictor, metric, base,
                           residual_choices=residual_search(DEFAULT_RESIDUAL_LEVELS))
    points = sim.sweep_near(max(CURVE_TARGETS), window=SEARCH_WINDOW, thresholds=THRESHOLDS)
    targets = {}
    for target in CURVE_TARGETS:
        p = choose_for_target(points, target).point
        targets[str(target)] = {"quality": p.quality, "threshold": p.threshold, "residual_levels": p.residual_levels,
                                "bpp": p.bpp, "lpips": p.lpips, "psnr": p.psnr, "coded": p.coded}
    return {"search_seconds": time.perf_counter() - t0, "targets": targets}


def write_report(results: dict, ablation: dict, out: Path) -> None:
    from jobs.benchmark_ablation import TARGETS

    clips = ablation["clips"]
    rows = {label: ablation["ours"][combo] for combo, label in ABLATION_ROWS.items()}
    rows.update({MODES[m]: results[m] for m in MODES if m in results})
    mean = {label: [float(np.mean([r[c]["targets"][str(t)]["lpips"] for c in clips])) for t in TARGETS]
            for label, r in rows.items()}
    copy_last = mean["copy-last"]
    lines = ["# Where restore-hint's gain comes from", "", __doc__.split("\n\n", 2)[2].strip(), "",
             f"Mean LPIPS over the {len(clips)} held-out clips (128x128x30), and the change against copy-last.", "",
             "| variant | " + " | ".join(f"{t} bpp" for t in TARGETS) + " | " +
             " | ".join(f"vs copy-last at {t}" for t in TARGETS) + " |", "|---|" + "---|" * (2 * len(TARGETS))]
    for label, m in mean.items():
        lines.append(f"| {label} | " + " | ".join(f"{v:.4f}" for v in m) + " | " +
                     " | ".join(f"{(v - b) / b:+.1%}" for v, b in zip(m, copy_last)) + " |")
    stronger = mean[MODES["kf_copy"]] if "kf_copy" in results else None
    if stronger:
        lines += ["", "restore-hint against copy-last with restored coded frames: " + ", ".join(
            f"{t}: {(v - b) / b:+.1%}" for t, v, b in zip(TARGETS, mean[ABLATION_ROWS['svtav1+restore-hint+residual']],
                                                          stronger))]
    lines += ["", "Per clip at 0.03 bpp:", "", "| variant | " + " | ".join(clips) + " |", "|---|" + "---|" * len(clips)]
    for label, r in rows.items():
        lines.append(f"| {label} | " + " | ".join(f"{r[c]['targets']['0.03']['lpips']:.3f}" for c in clips) + " |")
    (out / "restore_decomposition.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    from concurrent.futures import ProcessPoolExecutor, as_completed
    import multiprocessing

    from evc_archive.training.data import held_out_clips
    from jobs.benchmark_codec import evaluation_clip

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder (video/)")
    parser.add_argument("--ablation", type=Path, default=Path("docs/benchmarks/ablation.json"))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument("--workers", type=int, default=2, help="(mode, clip) tasks at once, one thread each")
    parser.add_argument("--report-only", action="store_true", help="rewrite the report from --out's JSON")
    args = parser.parse_args(argv)
    ablation = json.loads(args.ablation.read_text())
    cache = args.out / "restore_decomposition.json"
    results = json.loads(cache.read_text()) if cache.is_file() else {}
    if not args.report_only:
        clips = {p.stem: evaluation_clip(p).numpy() for p in held_out_clips(args.data / "video")}
        tasks = [(m, n) for m in MODES for n in clips if n not in results.get(m, {})]
        with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(run_mode, m, clips[n]): (m, n) for m, n in tasks}
            for future in as_completed(futures):
                m, n = futures[future]
                results.setdefault(m, {})[n] = future.result()
                cache.write_text(json.dumps(results, indent=1))
                print(f"{time.strftime('%H:%M:%S')} {m} {n}: {results[m][n]['search_seconds']:.0f} s", flush=True)
    write_report(results, ablation, args.out)


if __name__ == "__main__":
    main()
