"""Ablation: keyframe codec x predictor in the same closed loop, at matched bpp, against the
conventional anchors (io.baselines: x264, x265, SVT-AV1 preset 4 and preset 2 tune=0, each also at
half size); and the keyframe codecs alone at matched bpp. Writes docs/benchmarks/ablation.{md,json,png}.

    python -m jobs.benchmark_ablation --data ../shared/data --out docs/benchmarks [--split validation|test]

Per (combination, clip of the split: evc_archive.training.splits, validation unless --split test):
rate control's search (core.segment_coding.search_points), the lowest-LPIPS point within each target (ratecontrol.choose_for_target), encoded for real at that
point (segment_coding.encode_at: bytes checked) and decoded (checked bit-exact). The protocol, and
notes on the results, are docs/benchmarks/ablation_notes.md (static; the report links to it).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from evc_archive.core.registry import KEYFRAME_CODECS, PREDICTORS
from jobs.ablation_report import BASELINES, finished, plot, write_report
from jobs.benchmarks_common import (
    ABLATION_CURVE_TARGETS,
    ABLATION_SEARCH_BPP,
    ABLATION_TARGETS,
    ABLATION_THRESHOLDS,
    matched,
    parse_combo,
    timed_round_trip,
)

CODECS = tuple(s.name for s in KEYFRAME_CODECS.specs())
ALL_PREDICTORS = tuple(s.name for s in PREDICTORS.specs())
# measured with SVT-AV1 keyframes only; residual frames only with SVT-AV1 (the learned codec loses to
# SVT-AV1 intra-only already); the inter GOP fallback with these predictors
SVTAV1_ONLY = ("block-hint", "restore-hint", "restore-hint-bilinear", "restore-hint-int")
WITH_INTER = ("copy-last", "motion-hint", "restore-hint", "restore-hint-bilinear", "restore-hint-int")
DEFAULT_COMBOS = tuple(f"{k}+{p}" for k in CODECS for p in ALL_PREDICTORS if k == "svtav1" or p not in SVTAV1_ONLY) + \
    tuple(f"svtav1+{p}+residual" for p in ALL_PREDICTORS) + tuple(f"svtav1+{p}+residual+inter" for p in WITH_INTER)
SEARCH_NAME = "grid+breakpoints"  # what run_clip's search is (the report's search column)


def baseline_curves(clip: np.ndarray, metric, codecs: tuple[str, ...] = BASELINES) -> dict:
    """codec -> [{crf, bpp (SEI removed), raw_bpp, lpips, lpips_vgg, dists, psnr}] over the codec's sweep
    (io.baselines.sweep_crfs: down to its floor); lpips_vgg and dists are None outside the targets'
    io.baselines.rate_window."""
    from evc_archive.core.metrics import score_frames
    from evc_archive.core.source_scores import psnr_frames
    from evc_archive.core.reported_metrics import reported_scores
    from evc_archive.io.baselines import encode_baseline, rate_window, sweep_crfs

    n, h, w, _ = clip.shape
    src = torch.from_numpy(clip)
    curves = {}
    for codec in codecs:
        pts, recs = [], []
        for crf in sweep_crfs(codec):
            r = encode_baseline(clip, codec, crf)
            rec = torch.from_numpy(r.frames)
            recs.append(rec)
            pts.append({"crf": crf, "bpp": r.essential_bpp(w, h), "raw_bpp": r.bpp(w, h),
                        "lpips": float(score_frames(metric, rec, src).mean()), "psnr": float(psnr_frames(rec, src).mean()),
                        "lpips_vgg": None, "dists": None})
        for i in rate_window([p["bpp"] for p in pts], ABLATION_TARGETS):  # reported metrics near the targets only
            pts[i].update(reported_scores(recs[i], src).means())
        curves[codec] = pts
    return curves


def run_clip(combo: str, name: str, clip: np.ndarray, threads: int, search: str = "exhaustive") -> dict:
    """One (combination, clip): search, choose per target, encode + decode the chosen points for
    real. Builds its own models, so it runs in a worker process as well as in this one."""
    from evc_archive.core.reported_metrics import reported_scores
    from evc_archive.core.metrics import shared_lpips
    from evc_archive.core.model_library import ModelLibrary
    from evc_archive.core.ratecontrol import choose_for_target
    from evc_archive.core.segment_coding import SegmentCoder, search_points
    from evc_archive.core.settings import EncoderSettings

    torch.set_num_threads(threads)
    kf, pred, residual_levels, inter = parse_combo(combo)
    lib = ModelLibrary()
    coder = SegmentCoder(lib.keyframe_named(kf), lib.predictor_named(pred), shared_lpips())
    clip_t = torch.from_numpy(clip)
    base = EncoderSettings.product(kf, residual_levels=residual_levels, inter_fallback=inter, search=search)
    t0 = time.perf_counter()
    # exhaustive: one sweep up to ABLATION_SEARCH_BPP covers every target; fast: a few points near each
    targets = ABLATION_SEARCH_BPP if search == "exhaustive" else ABLATION_CURVE_TARGETS
    points = search_points(coder, clip_t, base, targets, thresholds=ABLATION_THRESHOLDS)
    search_s = time.perf_counter() - t0
    per_target = {}
    for target in ABLATION_CURVE_TARGETS:
        p = choose_for_target(points, target).point
        row = {"quality": p.quality, "threshold": p.threshold, "residual_levels": p.residual_levels, "inter": p.inter,
               "bpp": p.bpp, "bytes": p.bytes, "lpips": p.lpips, "psnr": p.psnr, "coded": p.coded, "over": p.bpp > target}
        if target in ABLATION_TARGETS:
            coded, t_enc, t_dec = timed_round_trip(coder, clip_t, base, p)
            reported = reported_scores(coded.result.reconstruction, clip_t).means()  # not chosen on
            row.update(encode_fps=clip.shape[0] / t_enc, decode_fps=clip.shape[0] / t_dec, **reported,
                       residual_frames=sum(f.mode for f in coded.result.segment.frames))
        per_target[str(target)] = row
    return {"search_seconds": search_s, "search": SEARCH_NAME if search == "exhaustive" else "fast",
            "targets": per_target,
            "points": [p.row() for p in points]}


def run_combinations(tasks: list[tuple[str, str]], clips: dict[str, np.ndarray], workers: int, done,
                     search: str = "exhaustive") -> None:
    """Each (combination, clip name) task, `workers` at a time (one thread each when more than
    one), reporting each finished one to done(combo, clip, result)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    if workers <= 1:
        for combo, name in tasks:
            done(combo, name, run_clip(combo, name, clips[name], 2, search))
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_clip, combo, name, clips[name], 1, search): (combo, name) for combo, name in tasks}
        for future in as_completed(futures):
            combo, name = futures[future]
            done(combo, name, future.result())


def keyframe_rows(images: dict, codecs: dict, metric) -> list[dict]:
    """Every quality of every codec on every image, with the other codecs interpolated at its bpp."""
    from evc_archive.core.metrics import score_frames
    from evc_archive.core.source_scores import psnr_frames

    curves: dict[str, dict[str, list[dict]]] = {}
    for cname, codec in codecs.items():
        for iname, img in images.items():
            h, w = img.shape[:2]
            pts = []
            for q in codec.qualities:
                payload = codec.encode(img, q)
                rec = codec.decode(payload, q, h, w)[None]
                pts.append({"quality": q, "bpp": len(payload) * 8 / (h * w),
                            "psnr": float(psnr_frames(rec, img[None])[0]),
                            "lpips": float(score_frames(metric, rec, img[None])[0])})
            curves.setdefault(cname, {})[iname] = pts
    rows = []
    for cname in codecs:
        for iname, pts in curves[cname].items():
            for p in pts:
                row = {"codec": cname, "image": iname, **p}
                for other in codecs:
                    if other != cname:
                        row[f"{other}_lpips"] = matched(curves[other][iname], p["bpp"], "lpips")
                        row[f"{other}_psnr"] = matched(curves[other][iname], p["bpp"], "psnr")
                rows.append(row)
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from evc_archive.training.splits import add_split_option

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder (video/, images/kodak/)")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument("--combos", default=",".join(DEFAULT_COMBOS),
                        help="KEYFRAME+PREDICTOR[+residual][+inter] combinations, comma-separated")
    parser.add_argument("--cache", type=Path, default=None, help="JSON file keeping finished parts between runs")
    parser.add_argument("--skip-kodak", action="store_true")
    parser.add_argument("--clips", type=int, default=None, help="only the first N clips of the split (smoke runs)")
    add_split_option(parser)
    parser.add_argument("--search", choices=("exhaustive", "fast"), default="exhaustive",
                        help="rate control's search for every combination (EncoderSettings.search); the validation "
                             "tables are exhaustive, the reference the fast search is measured against")
    parser.add_argument("--report-only", action="store_true", help="rewrite the report and plot from --cache")
    parser.add_argument("--workers", type=int, default=1,
                        help="(combination, clip) tasks at once, in worker processes of one thread each; 1 = in "
                             "this process with 2 threads (encode/decode fps are then comparable with earlier runs)")
    return parser.parse_args(argv)


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


def measure_references(args, results: dict, clips: dict, save) -> None:
    """The baselines' CRF sweeps per clip and the keyframe codecs alone (the split's frames, Kodak)."""
    from PIL import Image

    from evc_archive.core.metrics import shared_lpips
    from evc_archive.core.model_library import ModelLibrary

    metric = shared_lpips()
    for name, clip in clips.items():
        missing = tuple(c for c in BASELINES if c not in results["baselines"].get(name, {}))  # caches predating one
        if missing:
            t0 = time.perf_counter()
            results["baselines"].setdefault(name, {}).update(baseline_curves(clip.numpy(), metric, missing))
            save()
            log(f"baselines {name}: {time.perf_counter() - t0:.0f} s")
    codecs = {k: ModelLibrary().keyframe_named(k) for k in CODECS}
    frames_key = f"{args.split} frames ({2 * len(clips)}, 128x128)"
    if frames_key not in results["keyframes"]:
        frames = {f"{n}#{i}": clip[i] for n, clip in clips.items() for i in (0, 15)}
        results["keyframes"][frames_key] = keyframe_rows(frames, codecs, metric)
        save()
        log(f"keyframe codecs on {args.split} frames: done")
    if not args.skip_kodak and "Kodak (24, full size)" not in results["keyframes"]:
        kodak = {p.stem: torch.from_numpy(np.asarray(Image.open(p).convert("RGB")).copy())
                 for p in sorted((args.data / "images" / "kodak").glob("*.png"))}
        results["keyframes"]["Kodak (24, full size)"] = keyframe_rows(kodak, codecs, metric)
        save()
        log("keyframe codecs on Kodak: done")


def measure_combinations(args, results: dict, clips: dict, save) -> None:
    """Every (combination, clip) not in the cache yet. A combination is finished (a dict of clips)
    or partial ({"partial": {clip: result}})."""
    combos = args.combos.split(",")
    for combo in combos:
        parse_combo(combo)  # a bad name fails here, before any work
    entries = {combo: results["ours"].get(combo, {"partial": {}}) for combo in combos}
    tasks = [(combo, n) for combo, entry in entries.items() if "partial" in entry for n in clips
             if n not in entry["partial"]]

    def done(combo: str, name: str, result: dict) -> None:
        partial = results["ours"].setdefault(combo, {"partial": {}})["partial"]
        partial[name] = result
        log(f"  {combo} {name}: sweep {len(result['points'])} points in {result['search_seconds']:.1f} s; "
            f"at 0.03 bpp LPIPS {result['targets']['0.03']['lpips']:.3f}")
        if len(partial) == len(clips):
            results["ours"][combo] = {n: partial[n] for n in clips}
        save()

    run_combinations(tasks, {n: clips[n].numpy() for n in clips}, args.workers, done, args.search)


def main(argv: list[str] | None = None) -> None:
    import datetime
    import os
    import platform

    from evc_archive.training.splits import clips_in
    from jobs.benchmarks_common import evaluation_clip

    os.environ.setdefault("SVT_LOG", "1")
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    cache = json.loads(args.cache.read_text()) if args.cache and args.cache.is_file() else {}

    def save() -> None:
        if args.cache:
            args.cache.write_text(json.dumps(cache))

    results = cache.setdefault("results", {"ours": {}, "baselines": {}, "keyframes": {}})
    if results.get("split", "validation" if results["ours"] else args.split) != args.split:  # older caches: validation
        raise SystemExit(f"{args.cache} holds another split than --split {args.split}: give another --cache file")
    clips = {p.stem: evaluation_clip(p) for p in clips_in(args.data / "video", args.split)[: args.clips]}
    results["clips"], results["split"] = list(clips), args.split
    if not args.report_only:
        measure_references(args, results, clips, save)
        measure_combinations(args, results, clips, save)
    results["meta"] = {"date": datetime.date.today().isoformat(),
                       "machine": f"{platform.machine()}, {os.cpu_count()} CPUs" + (
                           f", {args.workers} tasks at once, 1 thread each" if args.workers > 1 else ", 2 threads")}
    # the report's JSON keeps the chosen points per target, not every swept point (those stay in --cache)
    (args.out / "ablation.json").write_text(json.dumps(
        {**results, "ours": {k: {c: {kk: vv for kk, vv in v.items() if kk != "points"} for c, v in per.items()}
                             for k, per in finished(results).items()}}, indent=1))
    write_report(results, args.out)
    plot(results, args.out)
    log(f"wrote {args.out / 'ablation.md'}")


if __name__ == "__main__":
    main()
