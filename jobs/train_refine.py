"""Train the refine-diffusion model behind the refine-diffusion predictor (CPU or GPU, unchanged).

1. Loop contexts (CPU, needs the AV1 codec; reads a frame data set from jobs.prepare_data, which
   holds training clips only): crop clips of the training videos (some with synthetic motion)
   coded through the encoder's loop at random settings, every predictor call recorded with the
   decoded frames it saw (training.refine_data).
    python -m jobs.train_refine prepare --frames data-cache/frames.npz --out data-cache/refine_contexts.npz
2. Train (the contexts file is self-contained: it travels to a GPU machine without a video codec;
   `--context-frames K` (default 2) sets how many decoded frames the model sees beside the base
   frame, 0 for the base frame alone as in the shipped refine-int.pt):
    python -m jobs.train_refine train --contexts data-cache/refine_contexts.npz --out runs/refine --minutes 20
    ray job submit --working-dir . -- python -m jobs.train_refine train --contexts data-cache/refine_contexts.npz \
        --out /shared/runs/refine --ray-workers 8 --use-gpu --minutes 8     # Ray Train, one worker per GPU
   The EMA weights are written as a model file (runs/refine/refine.pt) as training goes, with the
   log (refine.jsonl) beside it; `--init runs/refine/refine.pt` resumes from it.
   In a lent GPU window (commands of at most 10 minutes; the device tool carries at most 64 MiB
   of ignored files, and 96x96 contexts take ~110 KB each compressed, so prepare at most ~220 clips
   (about 530 contexts) for it, and `--init` chains the commands):
    python -m jobs.train_refine train --contexts data-cache/refine_contexts.npz --out $OUT/refine --minutes 8 \
        --device cuda --batch 64 [--init runs/refine/refine.pt]
3. Export: copy the model file into the package and draw its loss curve:
    python -m jobs.train_refine export runs/refine --out evc_archive/models/refine.pt
4. Quantise it into the integer model the predictor runs (bit-exact on any hardware), calibrated on
   the same training contexts:
    python -m jobs.train_refine quantize evc_archive/models/refine.pt --contexts data-cache/refine_contexts.npz \
        --out evc_archive/models/refine-int.pt
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch


def prepare(args: argparse.Namespace) -> None:
    from evc_archive.training.refine_data import prepare_refine_contexts

    summary = prepare_refine_contexts(args.frames, args.out, clips=args.clips, crop=args.crop, length=args.length,
                                      synthetic_share=args.synthetic_share, seed=args.seed, processes=args.processes,
                                      progress=lambda k, n: print(f"clips {k}/{n}", flush=True))
    print(json.dumps(summary))


def train(config: dict, workers) -> dict:
    """The training run (config: this job's options), alone or as one data-parallel worker."""
    from evc_archive.core.metrics import LpipsMetric
    from evc_archive.core.refine import RefineConfig, Refiner
    from evc_archive.training.log import TrainingLog
    from evc_archive.training.refine_data import RefineContexts
    from evc_archive.training.refine_trainer import RefineTrainConfig, train_refine

    device, out = workers.device, Path(config["out"])
    init = None
    if config["init"]:
        start = Refiner.load(Path(config["init"]))
        model_cfg, init = start.config, start.net
    else:
        model_cfg = RefineConfig(channels=config["channels"], blocks=config["blocks"],
                                 context_frames=config["context_frames"])
    cfg = RefineTrainConfig(steps=config["steps"], batch=config["batch"], crop=config["crop"], lr=config["lr"],
                            lpips_weight=config["lpips_weight"], minutes=config["minutes"], seed=config["seed"])
    out.mkdir(parents=True, exist_ok=True)
    if workers.is_chief:
        (out / "refine.json").write_text(json.dumps({
            "model": model_cfg.__dict__, "train": cfg.__dict__, "device": device,
            "hardware": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
            "data_parallel_workers": workers.world_size}))
    contexts = RefineContexts.load(Path(config["contexts"]), device)
    lpips = LpipsMetric.load(device=device) if cfg.lpips_weight > 0 else None
    log = TrainingLog(out / "refine.jsonl", enabled=workers.is_chief)
    train_refine(contexts, model_cfg, cfg, out / "refine.pt", contexts.base_model, log, lpips, device, init, workers)
    if workers.is_chief:
        print(f"refine: done in {log.seconds:.0f} s", flush=True)
    return {"seconds": log.seconds, "workers": workers.world_size}


def export(args: argparse.Namespace) -> None:
    from evc_archive.training.log import plot_loss_curves, read_log

    shutil.copyfile(args.run / "refine.pt", args.out)
    plot_loss_curves({"x0 MSE + LPIPS": args.run / "refine.jsonl"}, "loss", args.out.with_suffix(".loss.png"),
                     "refine-diffusion model")
    info = json.loads((args.run / "refine.json").read_text())
    last = read_log(args.run / "refine.jsonl")[-1]
    args.out.with_suffix(".train.json").write_text(json.dumps({**info, "steps_done": last["step"],
                                                               "seconds": last["seconds"]}, indent=1))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


def quantize(args: argparse.Namespace) -> None:
    from evc_archive.core.int_refine import IntRefiner
    from evc_archive.core.refine import Refiner
    from evc_archive.training.refine_data import RefineContexts
    from evc_archive.training.refine_quantize import calibration_contexts
    from evc_archive.training.refine_quantize import quantize as quantize_net

    float_model = Refiner.load(args.model)
    condition, target = calibration_contexts(RefineContexts.load(args.contexts), float_model.config.context_frames,
                                             args.calibration_crops)
    model = quantize_net(float_model.net, float_model.config, condition, target)
    digest = IntRefiner.save(args.out, model, float_model.base_model,
                             extra={"float_model_sha256": float_model.content_hash.hex(),
                                    "calibration_crops": int(condition.shape[0])})
    curve = Path(args.model).with_suffix(".loss.png")
    if curve.is_file():  # the integer model's training curve is its float parent's
        shutil.copyfile(curve, Path(args.out).with_suffix(".loss.png"))
    shifts = [int(s) for c in model.layers() for s in (c.shift.min(), c.shift.max())]
    print(json.dumps({"out": str(args.out), "sha256": digest.hex(), "parameters": model.parameter_count(),
                      "shift_range": [min(shifts), max(shifts)]}))


def main(argv: list[str] | None = None) -> None:
    from evc_archive.training.parallel import add_training_options, launch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="make loop contexts (the default predictor's calls as the loop makes them "
                       "on crop clips of the training videos)")
    p.add_argument("--frames", type=Path, required=True, help="frame data set from jobs.prepare_data")
    p.add_argument("--out", type=Path, required=True, help="contexts file to write (.npz)")
    p.add_argument("--clips", type=int, default=400,
                   help="crop clips coded through the loop, each at random settings (each gives 1-3 contexts)")
    p.add_argument("--crop", type=int, default=96, help="side of the crops (at most the frames' short side)")
    p.add_argument("--length", type=int, default=12, help="frames per crop clip")
    p.add_argument("--synthetic-share", type=float, default=0.3,
                   help="share of the clips made from one still frame with synthetic motion (a pan and a moving patch)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--processes", type=int, default=2, help="encoder processes")
    t = sub.add_parser("train", help="train the model")
    t.add_argument("--contexts", type=Path, required=True, help="contexts file from `prepare`")
    t.add_argument("--out", type=Path, required=True, help="run folder")
    t.add_argument("--channels", type=int, default=32)
    t.add_argument("--blocks", type=int, default=4)
    t.add_argument("--context-frames", type=int, default=2, choices=(0, 1, 2),
                   help="decoded frames the model sees beside the base frame (0: the base frame only)")
    t.add_argument("--lpips-weight", type=float, default=0.5, help="LPIPS of the x0 estimate's frame beside its MSE")
    add_training_options(t, batch=16, crop=64, model_file="refine-diffusion model file")
    e = sub.add_parser("export", help="copy a run's model into the package, with its loss curve")
    e.add_argument("run", type=Path)
    e.add_argument("--out", type=Path, required=True)
    q = sub.add_parser("quantize", help="quantise a float model file into the integer model (core.int_refine)")
    q.add_argument("model", type=Path, help="float refine model file")
    q.add_argument("--contexts", type=Path, required=True, help="training contexts file from `prepare` (calibration)")
    q.add_argument("--out", type=Path, required=True, help="integer model file to write")
    q.add_argument("--calibration-crops", type=int, default=256, help="contexts the activation ranges come from")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare(args)
    elif args.command == "train":
        launch(train, args, "refine")
    elif args.command == "quantize":
        quantize(args)
    else:
        export(args)


if __name__ == "__main__":
    main()
