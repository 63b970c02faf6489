"""Train the keyframe codec (one model per quality level) and export the shipped model file.

Train (CPU or GPU, unchanged; each --lambdas entry is one quality level, trained in turn):
    python -m jobs.train_keyframe train --data data-cache/frames.npz --out runs/kf --minutes 8
Data-parallel on a Ray cluster (Ray Train TorchTrainer, one worker per GPU; same loop, same files):
    ray job submit --working-dir . -- python -m jobs.train_keyframe train --data data-cache/frames.npz \
        --out /shared/runs/kf --ray-workers 8 --use-gpu --minutes 8
Export (builds the entropy-coding tables, writes the model file and its loss-curve PNG):
    python -m jobs.train_keyframe export runs/kf --out evc_archive/models/keyframe.pt
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

DEFAULT_LAMBDAS = "0.00045,0.0009,0.0018,0.0035,0.0067"


def train(args: argparse.Namespace) -> None:
    """Train here (one process), or on --ray-workers Ray Train workers (TorchTrainer)."""
    from evc_archive.training.parallel import launch

    launch(train_levels, args, "keyframe")


def train_levels(config: dict, workers) -> dict:
    """Train every requested quality level in turn (config: this job's options)."""
    from evc_archive.core.hyperprior import KeyframeConfig
    from evc_archive.training.data import FrameDataset
    from evc_archive.training.keyframe_trainer import KeyframeTrainConfig, train_keyframe
    from evc_archive.training.log import TrainingLog

    device, out = workers.device, Path(config["out"])
    dataset = FrameDataset.load(Path(config["data"]), device)
    lpips = None
    if config["lpips_weight"] > 0:
        from evc_archive.core.metrics import LpipsMetric
        lpips = LpipsMetric.load(device=device)
    lambdas = [float(x) for x in config["lambdas"].split(",")]
    qualities = [config["quality"]] if config["quality"] else range(1, len(lambdas) + 1)
    model_config = KeyframeConfig(channels=config["channels"], latent_channels=config["latent_channels"])
    out.mkdir(parents=True, exist_ok=True)
    hardware = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    last = {}
    for q in qualities:
        cfg = KeyframeTrainConfig(lmbda=lambdas[q - 1], lpips_weight=config["lpips_weight"], steps=config["steps"],
                                  batch=config["batch"], crop=config["crop"], lr=config["lr"],
                                  minutes=config["minutes"], seed=q)
        if workers.is_chief:
            (out / f"q{q}.json").write_text(json.dumps({
                "quality": q, "model": model_config.__dict__, "train": cfg.__dict__, "device": device,
                "hardware": hardware, "data_parallel_workers": workers.world_size}))
        log = TrainingLog(out / f"q{q}.jsonl", enabled=workers.is_chief)
        init = None
        if config["init"]:
            init = torch.load(Path(config["init"]) / f"q{q}.ckpt", map_location="cpu", weights_only=True)["state"]
        train_keyframe(dataset, model_config, cfg, out / f"q{q}.ckpt", log, device, lpips, init, workers)
        last[f"q{q}_seconds"] = log.seconds
        if workers.is_chief:
            print(f"quality {q}: done in {log.seconds:.0f} s", flush=True)
    return {**last, "workers": workers.world_size}


def export(args: argparse.Namespace) -> None:
    from evc_archive.core.hyperprior import HyperpriorModel, KeyframeCodec, KeyframeConfig, load_compact_state
    from evc_archive.training.log import plot_loss_curves, read_log

    models, logs, meta = {}, {}, {}
    for ckpt in sorted(args.run.glob("q*.ckpt")):
        q = int(ckpt.stem[1:])
        info = json.loads((args.run / f"q{q}.json").read_text())
        model = HyperpriorModel(KeyframeConfig(**info["model"]))
        load_compact_state(model, torch.load(ckpt, map_location="cpu", weights_only=True)["state"])
        models[q] = model
        logs[f"q{q} (lambda {info['train']['lmbda']})"] = args.run / f"q{q}.jsonl"
        last = read_log(args.run / f"q{q}.jsonl")[-1]
        meta[q] = {**info, "steps_done": last["step"], "seconds": last["seconds"]}
    config = next(iter(models.values())).config
    digest = KeyframeCodec.save(args.out, config, models, extra={"qualities": meta})
    plot_loss_curves(logs, "loss", args.out.with_suffix(".loss.png"), "keyframe codec: bpp + lambda*D")
    (args.out.with_suffix(".train.json")).write_text(json.dumps(meta, indent=1))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, sha256 {digest.hex()[:16]}...)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train quality levels")
    t.add_argument("--data", type=Path, required=True, help="data set file from jobs.prepare_data")
    t.add_argument("--out", type=Path, required=True, help="run folder for checkpoints and logs")
    t.add_argument("--lambdas", default=DEFAULT_LAMBDAS, help="one lambda per quality level, comma-separated")
    t.add_argument("--quality", type=int, default=0, help="train only this quality (1-based); 0 = all")
    t.add_argument("--lpips-weight", type=float, default=0.0, help="LPIPS weight beside 255^2*MSE")
    t.add_argument("--steps", type=int, default=20000)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--crop", type=int, default=128)
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--channels", type=int, default=64)
    t.add_argument("--latent-channels", type=int, default=96)
    t.add_argument("--minutes", type=float, default=None, help="wall-time budget per quality level")
    t.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    t.add_argument("--init", type=Path, default=None, help="run folder whose q<N>.ckpt start each quality (resume)")
    from evc_archive.training.parallel import add_ray_train_options

    add_ray_train_options(t)
    e = sub.add_parser("export", help="assemble the shipped model file from a run folder")
    e.add_argument("run", type=Path)
    e.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    train(args) if args.command == "train" else export(args)


if __name__ == "__main__":
    main()
