"""Train the diffusion predictor (CPU or GPU, unchanged).

    python -m jobs.train_predictor --data data-cache/frames.npz --out runs/pred --minutes 8
    ray job submit --working-dir . -- python -m jobs.train_predictor --data data-cache/frames.npz \
        --out /shared/runs/pred --ray-workers 8 --use-gpu --minutes 8     # Ray Train, one worker per GPU
The EMA weights are written as a predictor model file (runs/pred/predictor.pt) as training goes,
with the log (predictor.jsonl) beside it; `--plot` draws the loss curve of a finished run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> None:
    from evc_archive.training.log import plot_loss_curves
    from evc_archive.training.parallel import add_ray_train_options, launch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="data set file from jobs.prepare_data")
    parser.add_argument("--out", type=Path, required=True, help="run folder")
    parser.add_argument("--context-frames", type=int, default=2)
    parser.add_argument("--frames-per-call", type=int, default=4)
    parser.add_argument("--base-channels", type=int, default=32)
    parser.add_argument("--channel-mults", default="1,2,4", help="UNet channel multipliers per level")
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=16, help="clips per step (per worker with --ray-workers)")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--minutes", type=float, default=None, help="wall-time budget")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--init", type=Path, default=None, help="predictor model file to start from (resume)")
    parser.add_argument("--plot", action="store_true", help="only draw the loss curve of the run in --out")
    add_ray_train_options(parser)
    args = parser.parse_args(argv)
    if args.plot:
        plot_loss_curves({"v-prediction MSE": args.out / "predictor.jsonl"}, "loss",
                         args.out / "predictor.loss.png", "diffusion predictor")
        return
    launch(train, args, "predictor")


def train(config: dict, workers) -> dict:
    """The training run (config: this job's options), alone or as one data-parallel worker."""
    from evc_archive.core.predictors.diffusion import DiffusionConfig, DiffusionPredictor
    from evc_archive.training.data import FrameDataset
    from evc_archive.training.log import TrainingLog
    from evc_archive.training.predictor_trainer import PredictorTrainConfig, train_predictor

    device, out = workers.device, Path(config["out"])
    init = None
    if config["init"]:
        start = DiffusionPredictor.from_bytes(Path(config["init"]).read_bytes())
        model_cfg, init = start.config, start.unet
    else:
        mults = tuple(int(m) for m in config["channel_mults"].split(","))
        model_cfg = DiffusionConfig(context_frames=config["context_frames"], frames_per_call=config["frames_per_call"],
                                    base_channels=config["base_channels"], channel_mults=mults)
    cfg = PredictorTrainConfig(steps=config["steps"], batch=config["batch"], crop=config["crop"], lr=config["lr"],
                               minutes=config["minutes"])
    out.mkdir(parents=True, exist_ok=True)
    if workers.is_chief:
        (out / "predictor.json").write_text(json.dumps({
            "model": {**model_cfg.__dict__, "channel_mults": list(model_cfg.channel_mults)}, "train": cfg.__dict__,
            "device": device, "hardware": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
            "data_parallel_workers": workers.world_size}))
    dataset = FrameDataset.load(Path(config["data"]), device)
    log = TrainingLog(out / "predictor.jsonl", enabled=workers.is_chief)
    train_predictor(dataset, model_cfg, cfg, out / "predictor.pt", log, device, init, workers)
    if workers.is_chief:
        print(f"predictor: done in {log.seconds:.0f} s", flush=True)
    return {"seconds": log.seconds, "workers": workers.world_size}


if __name__ == "__main__":
    main()
