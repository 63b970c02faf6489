"""Train the restoration model behind the restore-hint predictor (CPU or GPU, unchanged).

1. Pairs (CPU, needs the AV1 codec; reads a frame data set from jobs.prepare_data, which holds
   training clips only):
    python -m jobs.train_restore prepare --frames data-cache/frames.npz --out data-cache/restore_pairs.npz
2. Train (the pairs file is self-contained, so it travels to a GPU machine without a video codec):
    python -m jobs.train_restore train --pairs data-cache/restore_pairs.npz --out runs/restore --minutes 8
    ray job submit --working-dir . -- python -m jobs.train_restore train --pairs data-cache/restore_pairs.npz \
        --out /shared/runs/restore --ray-workers 8 --use-gpu --minutes 8     # Ray Train, one worker per GPU
   The EMA weights are written as a model file (runs/restore/restore.pt) as training goes, with the
   log (restore.jsonl) beside it.
3. Export: copy the model file into the package and draw its loss curve:
    python -m jobs.train_restore export runs/restore --out evc_archive/models/restore.pt
4. Quantise it into the integer model the default predictor runs (bit-exact on any hardware),
   calibrated on the same training pairs:
    python -m jobs.train_restore quantize evc_archive/models/restore.pt --pairs data-cache/restore_pairs.npz \
        --out evc_archive/models/restore-int.pt
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch


def prepare(args: argparse.Namespace) -> None:
    from evc_archive.training.restore_data import prepare_restore_pairs

    summary = prepare_restore_pairs(args.frames, args.out, pairs=args.pairs, sources=args.sources,
                                    digit_pairs=args.digit_pairs, crop=args.crop, seed=args.seed, processes=args.processes,
                                    progress=lambda k, n: print(f"coded {k}/{n}", flush=True))
    print(json.dumps(summary))


def train(config: dict, workers) -> dict:
    """The training run (config: this job's options), alone or as one data-parallel worker."""
    from evc_archive.core.metrics import LpipsMetric
    from evc_archive.core.restore import RestoreConfig, Restorer
    from evc_archive.training.log import TrainingLog
    from evc_archive.training.restore_data import RestorePairs
    from evc_archive.training.restore_trainer import RestoreTrainConfig, train_restore

    device, out = workers.device, Path(config["out"])
    init = None
    if config["init"]:
        start = Restorer.load(Path(config["init"]))
        model_cfg, init = start.config, start.net
    else:
        model_cfg = RestoreConfig(channels=config["channels"], blocks=config["blocks"])
    cfg = RestoreTrainConfig(steps=config["steps"], batch=config["batch"], crop=config["crop"], lr=config["lr"],
                             lpips_weight=config["lpips_weight"], minutes=config["minutes"], seed=config["seed"])
    out.mkdir(parents=True, exist_ok=True)
    if workers.is_chief:
        (out / "restore.json").write_text(json.dumps({
            "model": model_cfg.__dict__, "train": cfg.__dict__, "device": device,
            "hardware": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
            "data_parallel_workers": workers.world_size}))
    pairs = RestorePairs.load(Path(config["pairs"]), device)
    lpips = LpipsMetric.load(device=device) if cfg.lpips_weight > 0 else None
    log = TrainingLog(out / "restore.jsonl", enabled=workers.is_chief)
    train_restore(pairs, model_cfg, cfg, out / "restore.pt", log, lpips, device, init, workers)
    if workers.is_chief:
        print(f"restore: done in {log.seconds:.0f} s", flush=True)
    return {"seconds": log.seconds, "workers": workers.world_size}


def export(args: argparse.Namespace) -> None:
    from evc_archive.training.log import plot_loss_curves, read_log

    shutil.copyfile(args.run / "restore.pt", args.out)
    plot_loss_curves({"L1 + LPIPS": args.run / "restore.jsonl"}, "loss", args.out.with_suffix(".loss.png"),
                     "restoration model (restore-hint predictor)")
    info = json.loads((args.run / "restore.json").read_text())
    last = read_log(args.run / "restore.jsonl")[-1]
    args.out.with_suffix(".train.json").write_text(json.dumps({**info, "steps_done": last["step"],
                                                               "seconds": last["seconds"]}, indent=1))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


def quantize(args: argparse.Namespace) -> None:
    from evc_archive.core.int_restore import IntRestorer
    from evc_archive.core.restore import Restorer
    from evc_archive.training.restore_data import RestorePairs
    from evc_archive.training.restore_quantize import calibration_frames, quantize as quantize_net

    float_model = Restorer.load(args.model)
    frames = calibration_frames(RestorePairs.load(args.pairs), args.calibration_frames)
    model = quantize_net(float_model.net, float_model.config, frames)
    digest = IntRestorer.save(args.out, model, extra={"float_model_sha256": float_model.content_hash.hex(),
                                                      "calibration_frames": int(frames.shape[0])})
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
    p = sub.add_parser("prepare", help="code training crops with AV1 intra into a pairs file")
    p.add_argument("--frames", type=Path, required=True, help="frame data set from jobs.prepare_data")
    p.add_argument("--out", type=Path, required=True, help="pairs file to write (.npz)")
    p.add_argument("--pairs", type=int, default=2400, help="video crops (128x128), each coded at one random level")
    p.add_argument("--sources", type=int, default=900, help="frames the crops are drawn from")
    p.add_argument("--digit-pairs", type=int, default=240, help="moving-digit frames (64x64)")
    p.add_argument("--crop", type=int, default=128, help="side of the coded crops (at most the frames' short side)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--processes", type=int, default=2, help="encoder processes")
    t = sub.add_parser("train", help="train the model")
    t.add_argument("--pairs", type=Path, required=True, help="pairs file from `prepare`")
    t.add_argument("--out", type=Path, required=True, help="run folder")
    t.add_argument("--channels", type=int, default=48)
    t.add_argument("--blocks", type=int, default=8)
    t.add_argument("--lpips-weight", type=float, default=1.0, help="LPIPS weight beside L1 (in [-1,1] units)")
    add_training_options(t, batch=32, crop=96, model_file="restoration model file")
    e = sub.add_parser("export", help="copy a run's model into the package, with its loss curve")
    e.add_argument("run", type=Path)
    e.add_argument("--out", type=Path, required=True)
    q = sub.add_parser("quantize", help="quantise a float model file into the integer model (core.int_restore)")
    q.add_argument("model", type=Path, help="float restoration model file")
    q.add_argument("--pairs", type=Path, required=True, help="training pairs file from `prepare` (calibration)")
    q.add_argument("--out", type=Path, required=True, help="integer model file to write")
    q.add_argument("--calibration-frames", type=int, default=512, help="128x128 crops the activation ranges come from")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare(args)
    elif args.command == "train":
        launch(train, args, "restore")
    elif args.command == "quantize":
        quantize(args)
    else:
        export(args)


if __name__ == "__main__":
    main()
