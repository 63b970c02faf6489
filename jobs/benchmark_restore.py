"""The restoration model alone, on frames of evaluation clips: LPIPS / PSNR of SVT-AV1 intra decodes
before and after restoration, per quality level, and what it does to frames that are already sharp.
Used to pick among trained candidates and for the model card. Writes docs/benchmarks/restore.{md,json}.

    python -m jobs.benchmark_restore --data ../shared/data --models evc_archive/models/restore.pt runs/r/*/restore.pt \
        [--split validation|test]
    python -m jobs.benchmark_restore --data ../shared/data --out docs/benchmarks/restore_int \
        --models evc_archive/models/restore.pt evc_archive/models/restore-int.pt   # float vs integer

Model files of either format (float: core.restore; integer: core.int_restore).

Frames: frames 0, 10 and 20 of each clip of one split (evc_archive.training.splits; validation unless
--split test), 128x128 as in the ablation; AV1 intra levels 8-20 (CRF 49..25), the range rate control
picks for coded frames at 0.02-0.07 bpp. "Sharp input": the source frame itself, restored (LPIPS
to the source; 0 would be a perfect pass-through). "Twice": restoring the restored decode again, as
happens when the restore-hint predictor's context is one of its own generated frames.
"Residual": what the loop also asks it to restore, a frame coded as a residual against the
predictor's guess (core.residual). The source frame 2 ahead (frames 2, 12, 22) is coded at the
level against the packaged default model's restoration of the intra decode of frames 0, 10, 20
(a still prediction, the loop's commonest); the same inputs for every model compared.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from jobs.benchmarks_common import evaluation_clip

LEVELS = (8, 10, 12, 14, 16, 18, 20)
FRAMES = (0, 10, 20)
AHEAD = 2  # residual rows: the frame this far ahead, coded against the restored decode


def restore_each(restorer, frames: torch.Tensor) -> torch.Tensor:
    """(n,H,W,3) uint8 -> (n,H,W,3) uint8, one frame at a time as the predictor does."""
    return torch.cat([restorer(frames[i:i + 1]) for i in range(frames.shape[0])])


def residual_decodes(codec, restorer, decoded: dict, ahead: torch.Tensor) -> dict:
    """level -> (n,H,W,3) uint8: `ahead` coded at the level as residuals against restorer(decoded[level])."""
    from evc_archive.core.residual import apply_residual, residual_image

    h, w = ahead.shape[1:3]

    def coded(target: torch.Tensor, prediction: torch.Tensor, level: int) -> torch.Tensor:
        payload = codec.encode(residual_image(target, prediction), level)
        return apply_residual(prediction, codec.decode(payload, level, h, w))

    out = {}
    for level, dec in decoded.items():
        pred = restore_each(restorer, dec)
        out[level] = torch.stack([coded(ahead[i], pred[i], level) for i in range(dec.shape[0])])
    return out


def evaluate(restorer, decoded: dict, sources: torch.Tensor, metric, residual: dict, ahead: torch.Tensor) -> dict:
    """decoded: level -> (n,H,W,3) uint8 decodes of sources (n,H,W,3); residual: level -> residual
    decodes of `ahead` (n,H,W,3) -> per-level scores."""
    from evc_archive.core.metrics import psnr_uint8

    rows = {}
    for level, dec in decoded.items():
        out = restore_each(restorer, dec)
        twice = restore_each(restorer, out)
        res = residual[level]
        rows[str(level)] = {"lpips_residual_decoded": float(metric.uint8(res, ahead).mean()),
                            "lpips_residual_restored": float(metric.uint8(restore_each(restorer, res), ahead).mean()),
                            "lpips_decoded": float(metric.uint8(dec, sources).mean()),
                            "lpips_restored": float(metric.uint8(out, sources).mean()),
                            "lpips_twice": float(metric.uint8(twice, sources).mean()),
                            "psnr_decoded": float(psnr_uint8(dec, sources).mean()),
                            "psnr_restored": float(psnr_uint8(out, sources).mean())}
    sharp = torch.cat([restorer(sources[i:i + 1]) for i in range(sources.shape[0])])
    t0 = time.perf_counter()
    for _ in range(10):
        restorer(sources[:1])
    return {"levels": rows, "sharp_input_lpips": float(metric.uint8(sharp, sources).mean()),
            "ms_per_frame_1_thread": (time.perf_counter() - t0) * 100}


def main(argv: list[str] | None = None) -> None:
    from evc_archive.core.keyframes.av1_intra import CRF_BY_QUALITY, AV1IntraCodec
    from evc_archive.core.metrics import shared_lpips
    from evc_archive.core.model_library import shipped_file
    from evc_archive.core.predictors.restore_hint import WEIGHT_FILE
    from evc_archive.core.int_restore import load_restoration_model
    from evc_archive.core.restore import Restorer
    from evc_archive.training.splits import add_split_option, clips_in

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder (video/)")
    parser.add_argument("--models", type=Path, nargs="+", required=True, help="restoration model files to compare")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    add_split_option(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    metric, codec = shared_lpips(), AV1IntraCodec()
    paths = clips_in(args.data / "video", args.split)
    clips = [evaluation_clip(p) for p in paths]
    sources = torch.stack([c[i] for c in clips for i in FRAMES])
    ahead = torch.stack([c[i + AHEAD] for c in clips for i in FRAMES])
    n, h, w, _ = sources.shape
    decoded = {q: torch.stack([codec.decode(codec.encode(sources[i], q), q, h, w) for i in range(n)]) for q in LEVELS}
    residual = residual_decodes(codec, Restorer.load(shipped_file(WEIGHT_FILE)), decoded, ahead)  # the shipped model
    results = {"frames": n, "split": args.split, "clips": [p.stem for p in paths], "levels": {str(q): CRF_BY_QUALITY[q] for q in LEVELS}, "models": {}}
    for path in args.models:
        restorer = load_restoration_model(path)
        name = str(path.parent.name if path.name == "restore.pt" and path.parent.name != "models" else path.name)
        parameters = (restorer.model.parameter_count() if restorer.integer
                      else sum(p.numel() for p in restorer.net.parameters()))
        results["models"][name] = {"file": path.name, "config": restorer.config.__dict__,
                                   "integer": restorer.integer, "parameters": parameters,
                                   **evaluate(restorer, decoded, sources, metric, residual, ahead)}
        print(name, json.dumps({k: round(v["lpips_restored"], 4) for k, v in results["models"][name]["levels"].items()}),
              flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "restore.json").write_text(json.dumps(results, indent=1))
    write_report(results, args.out / "restore.md")


def write_report(results: dict, out: Path) -> None:
    from evc_archive.training.splits import split_note

    lines = [f"# Restoration model alone, on {results['split']} frames", "", split_note(results["split"], results["clips"]), "",
             f"{results['frames']} frames (frames 0, 10, 20 of the {len(results['clips'])} {results['split']} clips, "
             "128x128), SVT-AV1 intra decodes; "
             "mean LPIPS (lower is better) and PSNR to the source. \"Residual\": frames "
             f"{', '.join(str(i + AHEAD) for i in FRAMES)} coded at the same level as residuals against the "
             "shipped model's restoration of those decodes (what the loop's residual frames look like), before and "
             "after restoration. Written by `jobs/benchmark_restore.py`.", ""]
    for name, m in results["models"].items():
        arithmetic = "integer" if m.get("integer") else "float32"
        lines += [f"## {name} ({arithmetic}): {m['config']}, {m['parameters']:,} parameters, "
                  f"{m['ms_per_frame_1_thread']:.0f} ms per 128x128 frame (1 thread)", "",
                  "| level (CRF) | LPIPS decoded | restored | restored twice | PSNR decoded | restored "
                  "| residual: LPIPS decoded | restored |",
                  "|---|---|---|---|---|---|---|---|"]
        for level, r in m["levels"].items():
            lines.append(f"| {level} ({results['levels'][level]}) | {r['lpips_decoded']:.4f} | {r['lpips_restored']:.4f} | "
                         f"{r['lpips_twice']:.4f} | {r['psnr_decoded']:.2f} | {r['psnr_restored']:.2f} | "
                         f"{r['lpips_residual_decoded']:.4f} | {r['lpips_residual_restored']:.4f} |")
        lines += ["", f"Sharp input (the source frame restored): LPIPS {m['sharp_input_lpips']:.4f} to the source.", ""]
    out.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
